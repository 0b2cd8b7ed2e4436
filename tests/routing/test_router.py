"""An alias's routing on real upstreams: spreading, retries on another deployment, fallbacks, cool-downs
and their recovery (an injected clock), streams retried only before their first chunk."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path

import pytest

from ailab.errors import (
    InvalidInput,
    ModelBusy,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from ailab.providers import local, openai_compat
from ailab.providers.base import ChatMessage, ChatRequest, Credential
from ailab.providers.plugin import ProviderContext
from ailab.providers.plugins import Plugins
from ailab.providers.registry import ProviderRegistry
from ailab.services.routing.router import BACKOFF_S, ForwardingAliasProvider
from tests.fakes.openai_server import FakeOpenAI
from tests.routing.conftest import MakeRouting, alias_yaml


async def test_requests_spread_over_the_healthy_deployments_by_weight(
    make_routing: MakeRouting, a: FakeOpenAI, b: FakeOpenAI
) -> None:
    yaml = (
        "aliases:\n  - name: fast\n    deployments:\n      - openai-compat/m\n"
        f"      - {{model: openai-compat/m, base_url: '{b.base_url}', weight: 3}}\n"
    )
    async with make_routing(yaml) as routing:
        routing.service.pacing.random = random.Random(7).random
        answers = Counter([await routing.ask("fast") for _ in range(40)])
    assert set(answers) == {"from a", "from b"}
    assert answers["from b"] > answers["from a"] >= 3  # 3:1 by weight
    assert (len(a.requests), len(b.requests)) == (answers["from a"], answers["from b"])
    assert {r.json["model"] for r in [*a.requests, *b.requests]} == {"m"}  # the provider's own name


async def test_a_429_moves_on_at_once_and_keeps_the_deployment_out_for_its_retry_after(
    make_routing: MakeRouting, a: FakeOpenAI, b: FakeOpenAI
) -> None:
    a.fail_status, a.retry_after = 429, "7"
    async with make_routing(alias_yaml(a, b)) as routing:
        assert await routing.ask("fast") == "from b"
        assert len(a.requests) == 1 and routing.sleeps.waits == []  # no wait: another deployment was free
        a.fail_status = None
        routing.clock.advance(6.5)
        assert [await routing.ask("fast") for _ in range(3)] == ["from b"] * 3
        assert len(a.requests) == 1  # left out while its Retry-After lasts
        routing.clock.advance(0.5)
        assert await routing.ask("fast") == "from a"


@pytest.mark.parametrize("failure", ["500", "timeout", "reset", "refused"])
async def test_a_failing_deployment_is_retried_on_the_other(
    make_routing: MakeRouting, a: FakeOpenAI, b: FakeOpenAI, failure: str
) -> None:
    if failure == "500":
        a.fail_status = 500
    elif failure == "timeout":
        a.slow = True  # holds the request until released: the alias's timeout_seconds ends the attempt
    elif failure == "reset":
        a.reset_connections = True
    else:
        await a.stop()  # nothing listens there any more: connection refused
    # The attempt's timeout also bounds b's answer: 1 s is far beyond a local answer, even under load.
    extra = {"timeout_seconds": 1.0} if failure == "timeout" else {}
    async with make_routing(alias_yaml(a, b, **extra)) as routing:
        assert await routing.ask("fast") == "from b"
        assert len(b.requests) == 1
        assert len(a.requests) == (0 if failure == "refused" else 1)
        status = routing.service.get("fast").status
        assert [s.in_flight for s in status] == [0, 0]  # the failed attempt is not counted as running


async def test_a_request_the_upstream_refuses_is_not_retried(
    make_routing: MakeRouting, a: FakeOpenAI, b: FakeOpenAI
) -> None:
    a.fail_status = 400
    async with make_routing(alias_yaml(a, b)) as routing:
        with pytest.raises(ProviderRejected):
            await routing.ask("fast")
    assert len(a.requests) == 1 and b.requests == []


async def test_when_every_deployment_fails_the_fallbacks_answer_after_a_backoff_round(
    make_routing: MakeRouting, a: FakeOpenAI, b: FakeOpenAI, c: FakeOpenAI
) -> None:
    a.fail_status = b.fail_status = 500
    yaml = alias_yaml(a, b, fallbacks="[openai/gpt-4o-mini]", retries=1)
    async with make_routing(yaml) as routing:
        assert await routing.ask("fast") == "from c"
        assert routing.sleeps.waits == [BACKOFF_S]  # one backoff before the second round
    assert (len(a.requests), len(b.requests), len(c.requests)) == (2, 2, 1)
    assert c.last.json["model"] == "gpt-4o-mini"


async def test_when_everything_fails_the_error_says_what_each_answered(
    make_routing: MakeRouting, a: FakeOpenAI, b: FakeOpenAI, c: FakeOpenAI
) -> None:
    a.fail_status = b.fail_status = 503
    c.fail_status = 500
    async with make_routing(alias_yaml(a, b, fallbacks="[openai/gpt-4o-mini]", retries=0)) as routing:
        with pytest.raises(ProviderUnavailable) as caught:
            await routing.ask("fast")
        assert "every deployment and fallback of 'fast' failed" in caught.value.message
        assert "openai-compat/m:" in caught.value.message and f"@{b.base_url}:" in caught.value.message
        assert "openai/gpt-4o-mini:" in caught.value.message

        a.fail_status = b.fail_status = c.fail_status = 429  # every one rate limited: 429, the shortest wait
        a.retry_after, b.retry_after, c.retry_after = "9", "4", "6"
        routing.clock.advance(60)  # the earlier failures' cool-downs are over
        with pytest.raises(ProviderRateLimited) as limited:
            await routing.ask("fast")
        assert limited.value.retry_after == 4


async def test_a_failing_deployment_cools_down_then_recovers(
    make_routing: MakeRouting, a: FakeOpenAI, b: FakeOpenAI
) -> None:
    a.fail_status = 500
    yaml = alias_yaml(a, b, cooldown="{failures: 2, seconds: 30}", retries=0)
    async with make_routing(yaml) as routing:
        assert [await routing.ask("fast") for _ in range(2)] == ["from b", "from b"]
        assert len(a.requests) == 2  # tried first each time (the draw takes the first), failed twice
        assert [s.available for s in routing.service.get("fast").status] == [False, True]

        assert [await routing.ask("fast") for _ in range(5)] == ["from b"] * 5
        assert len(a.requests) == 2  # cooling down: not asked
        routing.clock.advance(29.9)
        await routing.ask("fast")
        assert len(a.requests) == 2

        a.fail_status = None
        routing.clock.advance(0.1)  # the period is over: back in the running
        assert await routing.ask("fast") == "from a"
        assert [s.available for s in routing.service.get("fast").status] == [True, True]


async def test_failures_outside_the_window_do_not_add_up(
    make_routing: MakeRouting, a: FakeOpenAI, b: FakeOpenAI
) -> None:
    a.fail_status = 500
    async with make_routing(alias_yaml(a, b, cooldown="{failures: 2, seconds: 10}", retries=0)) as routing:
        await routing.ask("fast")
        routing.clock.advance(11)  # the first failure's window is over
        await routing.ask("fast")
        await routing.ask("fast")
        assert len(a.requests) == 3  # the second and third are the two in one window: now it cools down
        await routing.ask("fast")
        assert len(a.requests) == 3


async def test_with_every_deployment_cooling_down_and_no_fallback_the_alias_is_busy(
    make_routing: MakeRouting, a: FakeOpenAI, b: FakeOpenAI
) -> None:
    a.fail_status = b.fail_status = 500
    async with make_routing(alias_yaml(a, b, cooldown="{failures: 1, seconds: 20}", retries=0)) as routing:
        with pytest.raises(ProviderUnavailable):
            await routing.ask("fast")
        routing.clock.advance(5)
        with pytest.raises(ModelBusy) as caught:
            await routing.ask("fast")
        assert caught.value.status == 503 and caught.value.retry_after == 15
        assert (len(a.requests), len(b.requests)) == (1, 1)  # nothing was sent the second time
    b_key = f"openai-compat/m@{b.base_url}"
    assert routing.attempts == [
        ("fast", "openai-compat/m", "cooled_down"),
        ("fast", b_key, "cooled_down"),
        ("fast", "", "unavailable"),  # the 503: no attempt, counted once
    ]


async def test_an_attempt_cut_short_by_its_client_counts_as_cancelled(
    make_routing: MakeRouting, a: FakeOpenAI, b: FakeOpenAI
) -> None:
    a.slow = True  # a holds the request until released
    async with make_routing(alias_yaml(a, b)) as routing:
        asking = asyncio.create_task(routing.ask("fast"))
        await a.received.wait()
        asking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asking
        assert routing.attempts == [("fast", "openai-compat/m", "cancelled")]
        assert b.requests == []  # a client that left is not a deployment failure: nothing else is tried
        assert routing.alias("fast").route.deployments[0].state.in_flight == 0


async def test_a_client_that_leaves_while_a_retry_waits_counts_as_cancelled(
    make_routing: MakeRouting, a: FakeOpenAI, b: FakeOpenAI
) -> None:
    a.fail_status = b.fail_status = 500
    async with make_routing(alias_yaml(a, b, retries=1)) as routing:
        waiting = asyncio.Event()

        async def held(seconds: float) -> None:
            waiting.set()
            await asyncio.Event().wait()  # the backoff outlasts the client

        routing.service.pacing.sleep = held
        asking = asyncio.create_task(routing.ask("fast"))
        await waiting.wait()
        asking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asking
        b_key = f"openai-compat/m@{b.base_url}"
        # Not "failed": another round was coming; the client's leaving is counted once, on no target.
        assert routing.attempts == [
            ("fast", "openai-compat/m", "retried"),
            ("fast", b_key, "retried"),
            ("fast", "", "cancelled"),
        ]
    assert (len(a.requests), len(b.requests)) == (1, 1)  # nothing was tried after the client left


async def test_an_alias_embeds_on_the_deployment_that_answers(
    make_routing: MakeRouting, a: FakeOpenAI, b: FakeOpenAI
) -> None:
    a.fail_status = 500
    yaml = alias_yaml(a, b).replace("openai-compat/m", "openai-compat/embed-small")
    async with make_routing(yaml) as routing:
        result = await routing.alias("fast").embed("fast", ["the cat sat", "on the mat"])
        assert len(result.vectors) == 2
        assert [(r.path, r.json["model"]) for r in b.requests] == [("/v1/embeddings", "embed-small")]
        b_key = f"openai-compat/embed-small@{b.base_url}"
        assert routing.attempts == [("fast", "openai-compat/embed-small", "retried"), ("fast", b_key, "ok")]


async def test_a_retry_round_waits_for_the_first_retry_after_to_end(
    make_routing: MakeRouting, a: FakeOpenAI, b: FakeOpenAI
) -> None:
    a.fail_status, a.retry_after = 429, "2"
    b.fail_status, b.retry_after = 429, "3"
    async with make_routing(alias_yaml(a, b, retries=1)) as routing:
        waits = routing.sleeps

        async def sleep_then_recover(seconds: float) -> None:
            await waits(seconds)
            a.fail_status = None  # a is back when its Retry-After is over

        routing.service.pacing.sleep = sleep_then_recover
        assert await routing.ask("fast") == "from a"
        assert waits.waits == [2.0]  # not the 0.25 s backoff: both said when to come back
    assert (len(a.requests), len(b.requests)) == (2, 1)


async def test_a_stream_is_retried_before_its_first_chunk_but_never_after(
    make_routing: MakeRouting, a: FakeOpenAI, b: FakeOpenAI
) -> None:
    request = ChatRequest(model="fast", messages=[ChatMessage("user", "hi")])
    async with make_routing(alias_yaml(a, b, cooldown="{failures: 2, seconds: 30}")) as routing:
        alias = routing.alias("fast")
        a.fail_status = 500
        text = "".join([chunk.delta async for chunk in alias.stream(request)])
        assert text == "from b"

        a.fail_status, a.drop_after = None, 1  # one piece, then the connection is cut
        pieces: list[str] = []

        async def read() -> None:
            async for chunk in alias.stream(request):
                pieces.append(chunk.delta)

        with pytest.raises(ProviderUnavailable):
            await read()
        assert "".join(pieces) == "from "  # what came before the cut, from a alone
        assert len(b.requests) == 1  # the earlier stream's: no second answer spliced on
        status = routing.service.get("fast").status
        assert [s.in_flight for s in status] == [0, 0]
        assert [s.available for s in status] == [False, True]  # the cut was a's second failure


async def test_least_busy_sends_the_next_request_where_fewer_are_running(
    make_routing: MakeRouting, a: FakeOpenAI, b: FakeOpenAI
) -> None:
    request = ChatRequest(model="fast", messages=[ChatMessage("user", "hi")])
    a.stall_after = 1  # a's stream sends one piece, then waits
    async with make_routing(alias_yaml(a, b, strategy="least-busy")) as routing:
        alias = routing.alias("fast")
        held = alias.stream(request)
        assert (await anext(held)).delta == "from "
        assert [s.in_flight for s in routing.service.get("fast").status] == [1, 0]
        assert await routing.ask("fast") == "from b"
        a.release.set()
        assert "".join([chunk.delta async for chunk in held]) == "a"
        assert [s.in_flight for s in routing.service.get("fast").status] == [0, 0]


async def test_a_timeout_alone_is_a_timeout(make_routing: MakeRouting, a: FakeOpenAI, b: FakeOpenAI) -> None:
    a.slow = b.slow = True
    async with make_routing(alias_yaml(a, b, timeout_seconds=0.1, retries=0)) as routing:
        with pytest.raises(ProviderTimeout, match=r"did not start answering within 0\.1s"):
            await routing.ask("fast")


async def test_an_alias_of_openai_wire_deployments_forwards_bytes(
    make_routing: MakeRouting, a: FakeOpenAI, b: FakeOpenAI
) -> None:
    async with make_routing(alias_yaml(a, b)) as routing:
        alias = routing.alias("fast")
        assert isinstance(alias, ForwardingAliasProvider)
        a.fail_status = 502
        payload = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
        upstream = await alias.forward_chat_completions(payload)
        body = b"".join([chunk async for chunk in upstream.body])
        assert b'"from b"' in body and upstream.status == 200
        assert b.last.json["model"] == "m"


class StoredCredentials:
    """A credential store as the vault answers: a key and a base URL stored for ``openai-compat``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    async def get(self, service: str) -> Credential | None:
        return Credential(api_key="sk-stored-0123456789abcdefghij", config={"base_url": self.base_url})


async def test_a_deployments_base_url_wins_over_the_stored_one_and_keeps_the_key(
    tmp_path: Path, a: FakeOpenAI, b: FakeOpenAI
) -> None:
    plugin = openai_compat.PLUGIN
    plugins = Plugins({plugin.name: plugin}, {plugin.name: plugin.load_settings({})})
    context = ProviderContext(data_dir=tmp_path, timeout_s=10)
    registry = ProviderRegistry.from_plugins(plugins, StoredCredentials(a.base_url), context)
    try:
        variant = registry.variant("openai-compat", b.base_url)
        assert registry.variant("openai-compat", b.base_url) is variant  # one per base URL
        result = await variant.chat(ChatRequest(model="m", messages=[ChatMessage("user", "hi")]))
        assert result.content == "from b" and a.requests == []
        assert b.last.header("authorization") == "Bearer sk-stored-0123456789abcdefghij"
        local_only = Plugins({local.PLUGIN.name: local.PLUGIN}, {"local": local.PLUGIN.load_settings({})})
        embedded = ProviderRegistry.from_plugins(local_only, StoredCredentials(a.base_url), context)
        try:
            with pytest.raises(InvalidInput, match="no base URL"):
                embedded.variant("local", b.base_url)
        finally:
            await embedded.aclose()
    finally:
        await registry.aclose()
