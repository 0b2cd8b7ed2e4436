"""The models file and ``/models/aliases``: admins write it (atomically, checked), the app reads it at
start (a broken file stops it) and again when it changes (a broken change keeps the last good aliases)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
import yaml

from ailab.config import ConfigError, Settings
from ailab.services.auth.accounts import Principal
from tests.conftest import AppClientFactory, bearer
from tests.fakes.openai_server import FakeOpenAI
from tests.routing.conftest import AliasApp, alias_yaml
from tests.support.provider_settings import configure

FAST = {
    "deployments": ["openai-compat/m", {"model": "openai/gpt-4o-mini", "weight": 2}],
    "fallbacks": ["openai-compat/other"],
    "cooldown": {"failures": 5, "seconds": 10},
}


async def test_admins_write_aliases_to_the_file_and_they_take_effect_at_once(
    alias_app: AliasApp, a: FakeOpenAI, c: FakeOpenAI
) -> None:
    async with alias_app(None) as client:
        services = client.services  # type: ignore[attr-defined]
        path = services.settings.models_path
        assert (await client.get("/models/aliases")).json() == {"items": [], "file": str(path)}
        assert not path.exists()

        put = await client.put("/models/aliases/fast", json=FAST)
        assert put.status_code == 200, put.text
        stored = put.json()
        assert stored["name"] == "fast" and stored["strategy"] == "weighted" and stored["retries"] == 1
        assert stored["deployments"][1] == {"model": "openai/gpt-4o-mini", "base_url": None, "weight": 2.0}
        assert [s["deployment"] for s in stored["status"]] == ["openai-compat/m", "openai/gpt-4o-mini"]
        assert all(s["available"] for s in stored["status"])

        # The file: plain model ids where nothing else is set, defaults left out; no temporary left.
        assert yaml.safe_load(path.read_text()) == {
            "aliases": [
                {
                    "name": "fast",
                    "deployments": ["openai-compat/m", {"model": "openai/gpt-4o-mini", "weight": 2.0}],
                    "fallbacks": ["openai-compat/other"],
                    "cooldown": {"failures": 5, "seconds": 10.0},
                }
            ]
        }
        assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".models")) == []
        assert "fast" in [m["id"] for m in (await client.get("/v1/models")).json()["data"]]

        # Fetched, edited and put back (status is read-only), then a second alias after it.
        edited = {**stored, "deployments": ["openai/gpt-4o-mini"], "strategy": "least-busy"}
        assert (await client.put("/models/aliases/fast", json=edited)).status_code == 200
        assert (
            await client.put("/models/aliases/cheap", json={"deployments": ["openai-compat/m"]})
        ).status_code == 200
        listed = (await client.get("/models/aliases")).json()["items"]
        assert [(i["name"], i["strategy"]) for i in listed] == [("fast", "least-busy"), ("cheap", "weighted")]
        reply = await client.post(
            "/v1/chat/completions", json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
        )
        assert reply.json()["choices"][0]["message"]["content"] == c.reply

        assert (await client.delete("/models/aliases/fast")).status_code == 204
        assert (await client.delete("/models/aliases/fast")).status_code == 404
        assert [a["name"] for a in yaml.safe_load(path.read_text())["aliases"]] == ["cheap"]
        gone = await client.post(
            "/v1/chat/completions", json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
        )
        assert gone.status_code == 404


@pytest.mark.parametrize(
    ("name", "body", "problem"),
    [
        ("fast", {"deployments": ["nowhere/m"]}, "unknown provider 'nowhere'"),
        ("fast", {"deployments": ["openai-compat/m"], "fallbacks": ["alias/cheap"]}, "not an alias"),
        ("openai", {"deployments": ["openai-compat/m"]}, "taken by a provider"),
        ("pipeline", {"deployments": ["openai-compat/m"]}, "taken by a provider"),
        ("google", {"deployments": ["openai-compat/m"]}, "taken by a provider"),  # gemini's other name
        ("fast", {"deployments": [{"model": "local/x", "base_url": "http://h:1"}]}, "has no base URL"),
        ("fast", {"deployments": [{"model": "ollama/x", "base_url": "ftp://h"}]}, "base_url must be"),
        ("fast", {"deployments": []}, "at least 1"),
        ("fast", {"deployments": ["openai-compat/m", "openai-compat/m"]}, "listed twice"),
        ("fast", {"deployments": ["no-slash"]}, "is not a model id"),
        ("fast", {"deployments": ["openai-compat/m"], "fallbacks": ["local"]}, "is not a model id"),
        ("fast", {"deployments": ["openai-compat/m"], "cooldown": {"failures": 0}}, "greater than or equal"),
        ("fast", {"deployments": ["openai-compat/m"], "name": "other"}, "the body names 'other'"),
        ("fast", {"deployments": ["openai-compat/m"], "surprise": 1}, "Extra inputs"),
    ],
)
async def test_invalid_aliases_are_422_and_change_nothing(
    alias_app: AliasApp, a: FakeOpenAI, b: FakeOpenAI, name: str, body: dict[str, object], problem: str
) -> None:
    async with alias_app(alias_yaml(a, b)) as client:
        path = client.services.settings.models_path  # type: ignore[attr-defined]
        before = path.read_text()
        answer = await client.put(f"/models/aliases/{name}", json=body)
        assert answer.status_code == 422, answer.text
        assert problem in answer.text
        assert path.read_text() == before
        assert [i["name"] for i in (await client.get("/models/aliases")).json()["items"]] == ["fast"]


async def test_a_bad_alias_name_in_the_path_is_422(alias_app: AliasApp) -> None:
    async with alias_app(None) as client:
        answer = await client.put("/models/aliases/a%2Fb", json={"deployments": ["openai-compat/m"]})
        assert answer.status_code in (404, 422)  # a slash never makes an alias name
        assert (
            await client.put("/models/aliases/-x", json={"deployments": ["openai-compat/m"]})
        ).status_code == 422


async def test_only_admins_see_or_change_aliases(alias_app: AliasApp, a: FakeOpenAI, b: FakeOpenAI) -> None:
    async with alias_app(alias_yaml(a, b)) as client:
        services = client.services  # type: ignore[attr-defined]
        user = await services.auth.create_user("bob", "a-password-for-bob")
        headers = bearer(services, Principal(id=user.id, name=user.name, role=user.role))
        assert (await client.get("/models/aliases", headers=headers)).status_code == 403
        body = {"deployments": ["openai-compat/m"]}
        assert (await client.put("/models/aliases/mine", json=body, headers=headers)).status_code == 403
        assert (await client.delete("/models/aliases/fast", headers=headers)).status_code == 403
        assert [i["name"] for i in (await client.get("/models/aliases")).json()["items"]] == ["fast"]
        # Using an alias is every user's: it is a model.
        reply = await client.post(
            "/v1/chat/completions",
            json={"model": "fast", "messages": [{"role": "user", "content": "hi"}]},
            headers=headers,
        )
        assert reply.status_code == 200


async def test_a_changed_file_is_read_again_and_a_broken_one_keeps_the_last_good_aliases(
    alias_app: AliasApp, a: FakeOpenAI, b: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    async with alias_app(alias_yaml(a, b)) as client:
        routing = client.services.routing  # type: ignore[attr-defined]
        path = routing.file.path
        assert await routing.refresh() is False  # unchanged: not read again

        # Another replica's edit (the watcher may notice it first: either way it is read once).
        path.write_text(alias_yaml(a, b).replace("name: fast", "name: quick"))
        await routing.refresh()
        ids = [m["id"] for m in (await client.get("/v1/models")).json()["data"]]
        assert "quick" in ids and "fast" not in ids

        with caplog.at_level(logging.ERROR, logger="ailab.routing"):
            path.write_text("aliases:\n  - name: quick\n    deployments: [nowhere/m]\n")
            await routing.refresh()
            path.write_text("aliases: [\n")
            await routing.refresh()
        assert "unknown provider 'nowhere'" in caplog.text and "not valid YAML" in caplog.text
        assert str(path) in caplog.text
        assert routing.names() == ["quick"]  # the last good aliases still serve
        answer = await client.post("/chat", json={"message": "hi", "model": "quick", "pipeline": "direct"})
        assert answer.json()["response"] == "from a"

        # The API does not overwrite a file it cannot read (someone's edit in progress).
        refused = await client.put("/models/aliases/fast", json={"deployments": ["openai-compat/m"]})
        assert refused.status_code == 409 and "not valid YAML" in refused.text
        assert path.read_text() == "aliases: [\n"

        path.unlink()  # no file: no aliases
        await routing.refresh()
        assert routing.names() == []


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("aliases: [\n", "not valid YAML"),
        ("aliases:\n  - name: fast\n    deployments: [nowhere/m]\n", "unknown provider 'nowhere'"),
        ("aliases:\n  - name: fast\n", "alias 'fast': deployments: Field required"),
        ("models: []\n", "expected a mapping with the key 'aliases'"),
        (
            "aliases:\n  - {name: x, deployments: [openai-compat/m]}\n  - {name: x, deployments: [openai-compat/m]}\n",
            "alias 'x' is defined twice",
        ),
    ],
)
async def test_a_broken_models_file_stops_the_start_naming_it(
    make_settings: Callable[..., Settings],
    database_url: str,
    app_client: AppClientFactory,
    content: str,
    problem: str,
) -> None:
    settings = make_settings(database_url=database_url, models_file=None)
    path = settings.data_dir / "elsewhere" / "routing.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    settings = configure(settings, models_file=path)
    with pytest.raises(ConfigError) as caught:
        async with app_client(settings):
            pass
    assert str(path) in str(caught.value)
    assert problem in str(caught.value)
