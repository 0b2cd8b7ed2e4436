"""/pipelines and /agents on the ASGI app: configuration, validation, permissions, seeding, and a
pipeline created through the API answering /chat on the scripted backend."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ailab.config import ConfigError, Settings
from ailab.services.auth.accounts import Principal
from ailab.services.chat.agents.builtin import BUILTIN_AGENTS
from tests.agents.scripted import NAME, Reply, ScriptedProvider
from tests.chat.conftest import parse_sse
from tests.conftest import AppClientFactory, bearer

EXAMPLE = Path(__file__).with_name("pipelines.example.yaml")
BUILTIN = {agent.name: agent for agent in BUILTIN_AGENTS}
CRITIC = {"name": "Critic", "role": "finds weaknesses", "system_prompt": "You criticise.", "answers": False}
WRITER = {"name": "Writer", "role": "writes the answer", "system_prompt": "You write the answer."}
REVIEW = {
    "name": "review",
    "description": "write, then criticise",
    "entry": "Writer",
    "routes": {"Writer": ["Critic"], "Critic": {"next": ["Writer", "end"], "default": "end"}},
    "max_steps": 4,
}


async def names(client: httpx.AsyncClient, what: str) -> list[str]:
    response = await client.get(f"/{what}")
    assert response.status_code == 200
    return [item["name"] for item in response.json()["items"]]


async def test_builtins_are_listed(client: httpx.AsyncClient) -> None:
    pipelines = (await client.get("/pipelines")).json()["items"]
    by_name = {p["name"]: p for p in pipelines}
    assert by_name["direct"]["kind"] == "direct"
    assert by_name["direct"]["editable"] is False
    assert by_name["agents"]["entry"] == "CEO"
    assert by_name["agents"]["routes"]["CEO"]["default"] == "Worker"
    assert by_name["agents"]["builtin"] is True
    assert await names(client, "agents") == ["CEO", "QA", "Reflection", "Worker"]
    assert (await client.get("/pipelines/direct")).json()["kind"] == "direct"
    ceo = (await client.get("/agents/CEO")).json()
    assert "NEXT" not in ceo["system_prompt"]  # the engine asks for decisions itself, from the routes
    assert ceo["answers"] is False


async def test_create_change_and_delete(
    any_database_url: str, make_settings: Callable[..., Settings], app_client: AppClientFactory
) -> None:
    async with app_client(make_settings(database_url=any_database_url)) as client:
        assert (await client.post("/agents", json=CRITIC)).status_code == 201
        assert (await client.post("/agents", json=WRITER)).status_code == 201
        created = await client.post("/pipelines", json=REVIEW)
        assert created.status_code == 201, created.text
        assert created.json()["routes"]["Writer"] == {"next": ["Critic"], "default": "Critic"}
        assert "review" in await names(client, "pipelines")

        # A GET answer can be edited and PUT back (read-only fields are ignored).
        fetched = (await client.get("/pipelines/review")).json()
        fetched["max_steps"] = 3
        replaced = await client.put("/pipelines/review", json=fetched)
        assert replaced.status_code == 200, replaced.text
        assert (await client.get("/pipelines/review")).json()["max_steps"] == 3

        critic = (await client.get("/agents/Critic")).json()
        critic["temperature"] = 0.0
        assert (await client.put("/agents/Critic", json=critic)).json()["temperature"] == 0.0

        # Built-ins are editable, not deletable.
        ceo = (await client.get("/agents/CEO")).json()
        ceo["max_tokens"] = 99
        assert (await client.put("/agents/CEO", json=ceo)).status_code == 200
        assert (await client.get("/agents/CEO")).json()["max_tokens"] == 99
        assert (await client.delete("/agents/CEO")).status_code == 409
        assert (await client.delete("/pipelines/agents")).status_code == 409
        assert (await client.delete("/pipelines/direct")).status_code == 409
        assert (await client.put("/pipelines/direct", json=REVIEW | {"name": "direct"})).status_code == 409

        # An agent in use cannot go; once its pipeline is gone, it can.
        in_use = await client.delete("/agents/Critic")
        assert in_use.status_code == 409
        assert "review" in in_use.json()["detail"]
        assert (await client.delete("/pipelines/review")).status_code == 204
        assert (await client.get("/pipelines/review")).status_code == 404
        assert (await client.delete("/agents/Critic")).status_code == 204
        assert (await client.delete("/agents/Critic")).status_code == 404
        assert "Critic" not in await names(client, "agents")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (REVIEW | {"routes": {"Writer": ["Ghost"]}}, "Ghost"),
        (REVIEW | {"routes": {"Writer": ["Critic"], "Critic": ["Writer"]}}, "reaches 'end'"),
        (REVIEW | {"name": "has space"}, "name"),
        (REVIEW | {"entry": "Nobody"}, "entry"),
        (REVIEW | {"routes": {"Writer": ["Critic"], "Critic": ["end"], "Stranger": ["end"]}}, "Stranger"),
        (REVIEW | {"max_steps": 1000}, "max_steps"),
        ([1, 2], "dictionary"),
    ],
)
async def test_invalid_pipelines_answer_422_and_change_nothing(
    client: httpx.AsyncClient, body: Any, reason: str
) -> None:
    for agent in (CRITIC, WRITER):
        assert (await client.post("/agents", json=agent)).status_code == 201
    before = await names(client, "pipelines")
    response = await client.post("/pipelines", json=body)
    assert response.status_code == 422, response.text
    assert reason in str(response.json()["detail"])
    assert await names(client, "pipelines") == before


async def test_conflicts_and_unknowns(client: httpx.AsyncClient) -> None:
    assert (await client.post("/agents", json=WRITER)).status_code == 201
    assert (await client.post("/agents", json=WRITER)).status_code == 409
    assert (await client.post("/pipelines", json=REVIEW | {"name": "agents"})).status_code == 409
    assert (await client.post("/pipelines", json=REVIEW | {"name": "direct"})).status_code == 409
    assert (await client.get("/pipelines/nothing")).status_code == 404
    assert (await client.put("/pipelines/nothing", json=REVIEW | {"name": "nothing"})).status_code == 404
    assert (await client.put("/agents/Writer", json=WRITER | {"name": "Other"})).status_code == 409
    assert (await client.post("/agents", json=WRITER | {"name": "END"})).status_code == 422
    assert (await client.get("/agents/bad%20name")).status_code == 422
    unknown = await client.post("/chat", json={"message": "hi", "pipeline": "nope"})
    assert unknown.status_code == 404
    assert "known: agents, direct" in unknown.json()["detail"]


async def test_writes_need_the_admin_role(client: httpx.AsyncClient) -> None:
    services = client.services  # type: ignore[attr-defined]
    user = await services.auth.create_user("bob", "a-password-for-bob")
    headers = bearer(services, Principal(id=user.id, name=user.name, role=user.role))
    assert (await client.get("/pipelines", headers=headers)).status_code == 200
    assert (await client.get("/agents/CEO", headers=headers)).status_code == 200
    assert (await client.post("/agents", json=WRITER, headers=headers)).status_code == 403
    assert (
        await client.put("/agents/CEO", json={"name": "CEO", "system_prompt": "x"}, headers=headers)
    ).status_code == 403
    assert (await client.delete("/pipelines/agents", headers=headers)).status_code == 403
    assert "Writer" not in await names(client, "agents")
    assert (await client.get("/pipelines", headers={"Authorization": "Bearer nope"})).status_code == 401


async def test_a_pipeline_created_through_the_api_answers_chat(client: httpx.AsyncClient) -> None:
    provider = ScriptedProvider(
        [
            Reply("Roses are red."),
            Reply("Too short, add a line."),  # the Critic's brief for the Writer
            Reply("Roses are red,\nviolets are blue."),
            Reply("A poem."),
        ],
        decisions=["Writer", "END", "END"],
    )
    client.services.providers.providers[NAME] = provider  # type: ignore[attr-defined]
    for agent in (CRITIC, WRITER):
        assert (await client.post("/agents", json=agent)).status_code == 201
    assert (await client.post("/pipelines", json=REVIEW)).status_code == 201

    answer = await client.post(
        "/chat", json={"message": "A poem", "pipeline": "review", "model": f"{NAME}/m"}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "success"
    assert body["response"] == "Roses are red,\nviolets are blue."
    assert "[2] Critic -> Writer" in body["thought_process"]
    assert body["thought_process"].endswith("completed in 4 steps")
    session_id = body["session_id"]

    states = (await client.get(f"/sessions/{session_id}/agent-states")).json()["items"]
    assert [(s["step"], s["agent"], s["decision"], s["routed_by"], s["status"]) for s in states] == [
        (1, "Writer", "Critic", "fixed", "done"),
        (2, "Critic", "Writer", "agent", "done"),
        (3, "Writer", "Critic", "fixed", "done"),
        (4, "Critic", "end", "agent", "done"),
    ]
    messages = (await client.get(f"/sessions/{session_id}/messages")).json()["items"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["thought_process"] == body["thought_process"]

    streamed = await client.post(
        "/chat",
        json={
            "message": "Another",
            "pipeline": "review",
            "model": f"{NAME}/m",
            "stream": True,
            "session_id": session_id,
        },
    )
    events = parse_sse(streamed.text)
    assert events[-1] == "[DONE]"
    kinds = [e["type"] for e in events[:-1]]
    assert kinds[0] == "agent_start"
    assert kinds[-1] == "final"
    assert {"agent_start", "delta", "decision", "agent_end", "final"} <= set(kinds)
    assert [(e["agent"], e["next"]) for e in events if isinstance(e, dict) and e["type"] == "decision"] == [
        ("Writer", "Critic"),
        ("Critic", "end"),
    ]
    assert all(
        e["agent"] in ("Writer", "Critic") for e in events if isinstance(e, dict) and e["type"] == "delta"
    )
    assert events[-2]["response"] == "A poem."
    assert len((await client.get(f"/sessions/{session_id}/messages")).json()["items"]) == 4
    assert len((await client.get(f"/sessions/{session_id}/agent-states")).json()["items"]) == 6


async def test_seeded_from_the_yaml_file_at_first_start_only(
    make_settings: Callable[..., Settings], unstarted_database_url: str, app_client: AppClientFactory
) -> None:
    settings = make_settings(database_url=unstarted_database_url)
    seed = settings.data_dir / "pipelines.yaml"
    seed.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(EXAMPLE, seed)
    async with app_client(settings) as client:
        assert await names(client, "pipelines") == ["direct", "agents", "code-review"]
        assert await names(client, "agents") == ["CEO", "Coder", "QA", "Reflection", "Reviewer", "Worker"]
        assert (await client.get("/agents/Worker")).json()["max_tokens"] == 256  # overridden built-in
        review = (await client.get("/pipelines/code-review")).json()
        assert review["routes"]["Reviewer"] == {"next": ["Coder", "end"], "default": "end"}
        assert (await client.delete("/pipelines/code-review")).status_code == 204

    seed.write_text("pipelines:\n  - name: late\n    entry: Coder\n    routes: {Coder: [end]}\n")
    async with app_client(settings) as client:
        assert await names(client, "pipelines") == ["direct", "agents"]  # seeded once, never again


async def test_a_broken_seed_file_stops_the_start(
    make_settings: Callable[..., Settings], unstarted_database_url: str, app_client: AppClientFactory
) -> None:
    settings = make_settings(database_url=unstarted_database_url)
    seed = settings.data_dir / "pipelines.yaml"
    seed.parent.mkdir(parents=True, exist_ok=True)
    seed.write_text("pipelines:\n  - name: loop\n    entry: Coder\n    routes: {Coder: [Coder]}\n")
    with pytest.raises(ConfigError) as caught:
        async with app_client(settings):
            pass
    assert str(seed) in str(caught.value)
    assert "reaches 'end'" in str(caught.value)


async def test_built_ins_left_at_an_earlier_default_are_updated_and_edited_ones_kept(
    make_settings: Callable[..., Settings], unstarted_database_url: str, app_client: AppClientFactory
) -> None:
    earlier = orjson.loads((Path(__file__).parent / "builtin-agents-3.0.0.json").read_bytes())
    settings = make_settings(database_url=unstarted_database_url)
    async with app_client(settings) as client:  # seeds today's built-ins
        # As an AI-Lab 3.0.0 database has them: the old CEO and QA, and a Reflection someone edited.
        assert (await client.put("/agents/CEO", json=earlier["CEO"])).status_code == 200
        assert (await client.put("/agents/QA", json=earlier["QA"])).status_code == 200
        edited = {**earlier["Reflection"], "system_prompt": "Reflect in haiku."}
        assert (await client.put("/agents/Reflection", json=edited)).status_code == 200
    async with app_client(settings) as client:  # the next start
        ceo = (await client.get("/agents/CEO")).json()
        assert ceo["system_prompt"] == BUILTIN["CEO"].system_prompt
        assert "NEXT" not in ceo["system_prompt"]
        assert (await client.get("/agents/QA")).json()["max_tokens"] == BUILTIN["QA"].max_tokens
        assert (await client.get("/agents/Reflection")).json()["system_prompt"] == "Reflect in haiku."
