"""Logging: the access log's lines in both formats, written once per turn of the loop; masking."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import time
from collections.abc import Iterator

import pytest

from ailab.logs import ACCESS_LOGGER, AccessLog, JsonFormatter, looks_secret, redact


class CountingStream(io.StringIO):
    """A stream that counts its writes (one per turn of the loop, however many lines)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def access_level() -> Iterator[logging.Logger]:
    logger = logging.getLogger(ACCESS_LOGGER)
    before = logger.level
    logger.setLevel(logging.INFO)
    yield logger
    logger.setLevel(before)


def test_text_lines_have_the_other_logs_shape(access_level: logging.Logger) -> None:
    stream = CountingStream()
    log = AccessLog()
    log.write_to(stream, "text")
    log.line("req-1", "GET", "/sessions/{session_id}", 200, 0.0125)
    line = stream.getvalue()
    assert line.endswith(" INFO    ailab.access: req-1 GET /sessions/{session_id} 200 12.5ms\n")
    date, clock = line.split(" ")[:2]
    assert len(date) == 10 and date[4] == "-" and clock[8] == ","  # 2026-11-27 23:59:59,123


def test_json_lines_carry_the_fields(access_level: logging.Logger) -> None:
    stream = CountingStream()
    log = AccessLog()
    log.write_to(stream, "json")
    log.line("req-2", "POST", "/chat", 429, 0.0031)
    record = json.loads(stream.getvalue())
    assert record["logger"] == "ailab.access"
    assert record["level"] == "info"
    assert (record["request_id"], record["method"], record["route"]) == ("req-2", "POST", "/chat")
    assert record["status"] == 429
    assert record["duration_ms"] == 3.1
    assert record["time"].endswith("Z") and "T" in record["time"]


def test_lines_of_one_turn_of_the_loop_are_written_together(access_level: logging.Logger) -> None:
    stream = CountingStream()
    log = AccessLog()
    log.write_to(stream, "text")

    async def serve() -> tuple[str, str]:
        for n in range(5):
            log.line(f"req-{n}", "GET", "/health/live", 200, 0.001)
        during = stream.getvalue()
        await asyncio.sleep(0)  # the loop turns: the pending lines go out
        return during, stream.getvalue()

    during, after = asyncio.run(serve())
    assert during == ""
    assert [line.split(": ")[1].split(" ")[0] for line in after.splitlines()] == [
        f"req-{n}" for n in range(5)
    ]
    assert stream.writes == 1


def test_nothing_is_written_below_the_access_loggers_level(access_level: logging.Logger) -> None:
    stream = CountingStream()
    log = AccessLog()
    log.write_to(stream, "text")
    access_level.setLevel(logging.WARNING)
    log.line("req-3", "GET", "/", 200, 0.001)
    assert stream.getvalue() == ""


def test_without_a_stream_lines_are_records_of_the_access_logger(
    access_level: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        AccessLog().line("req-4", "DELETE", "/files/{file_id}", 204, 0.002)
    (record,) = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    assert record.getMessage() == "req-4 DELETE /files/{file_id} 204 2.0ms"
    assert record.__dict__["route"] == "/files/{file_id}"


@pytest.mark.parametrize(
    "secret",
    [
        "Bearer abcdefgh12345678",
        "sk-proj-abcdefgh1234",
        "sk-ant-abcdefgh1234",
        "hf_abcdefgh1234",
        "ailab_abcdefgh12",
    ],
)
def test_credentials_are_masked(secret: str) -> None:
    assert looks_secret(f"x {secret} y")
    masked = redact(f"x {secret} y")
    assert "abcdefgh" not in masked and "[REDACTED]" in masked


def test_ordinary_text_is_not_a_secret() -> None:
    assert not looks_secret("trace-42")
    assert redact("GET /sessions 200") == "GET /sessions 200"


def test_a_line_left_by_a_closed_loop_goes_out_with_the_next_loops(access_level: logging.Logger) -> None:
    stream = CountingStream()
    log = AccessLog()
    log.write_to(stream, "text")
    loop = asyncio.new_event_loop()
    loop.call_soon(log.line, "first", "GET", "/", 200, 0.001)  # schedules its flush for the next turn...
    loop.call_soon(loop.stop)  # ...which never comes: the loop stops after this one and closes
    loop.run_forever()
    loop.close()
    assert stream.getvalue() == ""

    async def once(request_id: str) -> None:
        log.line(request_id, "GET", "/", 200, 0.001)

    assert asyncio.run(once("second")) is None
    assert [line.split(": ")[1].split(" ")[0] for line in stream.getvalue().splitlines()] == [
        "first",
        "second",
    ]


def test_json_records_are_stamped_in_utc() -> None:
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"  # a machine not in UTC
    time.tzset()
    try:
        record = logging.LogRecord("ailab.test", logging.INFO, __file__, 1, "hello", (), None)
        record.created = 1_800_000_000.25  # 2027-01-15T08:00:00.250Z
        record.msecs = 250
        stamped = json.loads(JsonFormatter().format(record))["time"]
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()
    assert stamped == "2027-01-15T08:00:00.250Z"
