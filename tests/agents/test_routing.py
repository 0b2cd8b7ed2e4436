"""Reading decisions and answers out of agents' text, and validating pipeline graphs (pure functions)."""

from __future__ import annotations

import pytest

from ailab.errors import InvalidInput
from ailab.services.chat.agents.definitions import parse_agent, parse_pipeline
from ailab.services.chat.agents.routing import answer_text, parse_decision

ALLOWED = ["Worker", "QA", "Reflection", "end"]


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("ANALYZE: hi\nPLAN: greet\nNEXT: END", "end"),
        ("next: worker.", "Worker"),
        ("**NEXT**: `QA`", "QA"),
        ("- Decision -> done", "end"),
        ("DECIDE: Reflection (to improve the process)", "Reflection"),
        ('{"next": "Reflection", "why": "improve"}', "Reflection"),
        ("Route = the developer", "Worker"),
        ("I will answer myself. NEXT: finished!", "end"),
        ("NEXT: Worker\n...\nNEXT: quality review", "QA"),  # the last decision wins
        ("Delegate to: Worker", "Worker"),
    ],
)
def test_lenient_decisions(text: str, target: str) -> None:
    parsed = parse_decision(text, ALLOWED)
    assert parsed.target == target, parsed


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Hello, how can I help?", "no decision found"),
        ("NEXT: the marketing department", "unreadable decision"),
        ("{not json} NEXT: ???", "unreadable decision"),
        ("", "no decision found"),
    ],
)
def test_unreadable_decisions_give_no_target(text: str, problem: str) -> None:
    parsed = parse_decision(text, ALLOWED)
    assert parsed.target is None
    assert parsed.problem is not None
    assert parsed.problem.startswith(problem)


def test_a_known_agent_that_is_not_allowed_is_reported_as_such() -> None:
    parsed = parse_decision("NEXT: QA", ["Worker", "end"], known=["Worker", "QA"])
    assert parsed.target is None
    assert parsed.problem == "'QA' is not allowed here (allowed: Worker, end)"


def test_answer_text_drops_the_protocol_and_keeps_the_answer() -> None:
    text = "ANALYZE: a greeting\nPLAN: greet back\n\nHello there!\nNice to meet you.\nNEXT: END"
    assert answer_text(text) == "Hello there!\nNice to meet you."
    assert answer_text("PLAN: x\nANSWER: Paris is the capital.\nNEXT: END") == "Paris is the capital."
    assert answer_text('Done. {"next": "end"}') == "Done."
    assert answer_text("ANALYZE: x\nNEXT: Worker") == ""


def test_valid_pipeline_forms() -> None:
    spec = parse_pipeline(
        {
            "name": "p-1",
            "entry": "A",
            "routes": {"A": ["B", "END"], "B": {"next": ["A", "end"], "default": "end"}},
        }
    )
    assert spec.routes["A"].next == ["B", "end"]
    assert spec.routes["A"].default == "B"  # a list's first entry
    assert spec.routes["B"].default == "end"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            {"name": "p", "entry": "A", "routes": {"A": ["B"], "B": ["A"]}},
            "no route from the entry 'A' reaches 'end'",
        ),
        (
            {"name": "p", "entry": "A", "routes": {"A": ["B", "end"], "B": ["C"], "C": ["B"]}},
            "from 'B' no route reaches 'end'",
        ),
        ({"name": "p", "entry": "A", "routes": {"A": ["Ghost"]}}, "routes to 'Ghost'"),
        ({"name": "p", "entry": "Z", "routes": {"A": ["end"]}}, "entry 'Z' has no route"),
        (
            {"name": "p", "entry": "A", "routes": {"A": {"next": ["end"], "default": "B"}}},
            "default 'B' is not one of",
        ),
        ({"name": "bad name!", "entry": "A", "routes": {"A": ["end"]}}, "name"),
        ({"name": "p", "entry": "A", "routes": {"A": ["end"]}, "max_steps": 0}, "max_steps"),
        ({"name": "p", "entry": "A", "routes": {"A": ["end", "end"]}}, "listed twice"),
        ({"name": "p", "entry": "A", "routes": {"A": ["end"]}, "colour": "red"}, "colour"),
        ({"name": "p", "entry": "A", "routes": {}}, "routes"),
    ],
)
def test_invalid_pipelines_are_refused_with_the_reason(body: dict[str, object], reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_pipeline(body)
    assert reason in caught.value.message


def test_agent_validation() -> None:
    assert (
        parse_agent({"name": "Coder", "system_prompt": "x", "model": "openai/gpt-4o-mini"}).model
        == "openai/gpt-4o-mini"
    )
    for body, reason in [
        ({"name": "end", "system_prompt": "x"}, "reserved"),
        ({"name": "Coder", "system_prompt": ""}, "system_prompt"),
        ({"name": "Coder", "system_prompt": "x", "model": "no-provider"}, "model"),
        ({"name": "Coder", "system_prompt": "x", "temperature": 5}, "temperature"),
    ]:
        with pytest.raises(InvalidInput) as caught:
            parse_agent(body)
        assert reason in caught.value.message
