"""``ai-lab models list``: every backend's models with their state, the pipelines, and why a backend has none."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from ailab.config import Settings
from ailab.providers import anthropic, local, openai, openai_compat
from ailab.providers.registry import ProviderRegistry
from ailab.services.chat.direct import DirectPipeline
from ailab.services.chat.pipelines import Pipelines
from ailab.services.models import model_rows
from tests.fakes.openai_server import FakeOpenAI
from tests.support.provider_settings import make_provider


async def test_rows_say_what_can_serve_and_why_the_rest_cannot(
    make_settings: Callable[..., Settings], fake_openai: FakeOpenAI, closed_port_url: str
) -> None:
    settings = make_settings(
        openai_base_url=fake_openai.base_url,
        openai_api_key=fake_openai.api_key,
        openai_compat_base_url=closed_port_url,
    )
    made = [make_provider(m.PLUGIN, settings) for m in (local, openai, anthropic, openai_compat)]
    registry = ProviderRegistry(made)
    try:
        rows = await model_rows(registry, Pipelines([DirectPipeline(registry)]))
    finally:
        await registry.aclose()
    by_id = {row.id: row for row in rows}
    smol = by_id["local/smollm2-135m-instruct"]
    assert (smol.kind, smol.state, smol.default) == ("local", "ready", True)
    assert smol.size_bytes is not None and smol.size_bytes > 50_000_000
    assert smol.context_window == local.LocalSettings().context
    assert by_id["openai/gpt-4o-mini"].state == "ready"
    assert by_id["pipeline/direct"].kind == "pipeline"
    assert "ai-lab keys set anthropic" in by_id["anthropic/*"].state
    assert "unreachable" in by_id["openai-compat/*"].state
    # Usable models first, then pipelines, then the backends without models.
    order = ["model" if not r.id.endswith("/*") and r.kind != "pipeline" else r.kind for r in rows]
    order = ["none" if r.id.endswith("/*") else kind for r, kind in zip(rows, order, strict=True)]
    assert order == sorted(order, key=["model", "pipeline", "none"].index)


@pytest.mark.slow
def test_the_command_prints_json_and_a_table(settings: Settings, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AILAB_")}
    env.update(AILAB_DATA_DIR=str(settings.data_dir), AILAB_DATABASE_URL=settings.sqlalchemy_url)
    assert settings.master_key is not None
    env["AILAB_MASTER_KEY"] = settings.master_key.get_secret_value()
    cli = str(Path(sys.executable).with_name("ai-lab"))
    listed = subprocess.run(
        [cli, "models", "list", "--json"], capture_output=True, text=True, env=env, check=False
    )
    assert listed.returncode == 0, listed.stderr
    ids = [row["id"] for row in orjson.loads(listed.stdout)]
    assert ids[0] == "local/smollm2-135m-instruct"
    assert {"pipeline/agents", "pipeline/direct"} <= set(ids)
    unknown = subprocess.run(
        [cli, "models", "install", "gpt-5"], capture_output=True, text=True, env=env, check=False
    )
    assert unknown.returncode == 2
    assert "installable: qwen2.5-coder-0.5b-instruct" in unknown.stderr
    assert "Traceback" not in unknown.stderr
