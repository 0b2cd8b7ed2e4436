"""The committed build of the web UI is what its sources build to (where Node.js is on PATH), and the
server serves it: the page with its Content-Security-Policy, hashed assets cached for good and gzipped,
Swagger UI from the package."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from ailab.api.routes.web import DIST

ROOT = Path(__file__).resolve().parents[2]
UI = ROOT / "ui"


def differences(left: Path, right: Path) -> list[str]:
    """Files that differ or exist on one side only, recursively."""
    found: list[str] = []
    compared = filecmp.dircmp(left, right)
    found += [f"only in the committed build: {n}" for n in compared.left_only]
    found += [f"only in the fresh build: {n}" for n in compared.right_only]
    found += [f"differs: {n}" for n in compared.diff_files]
    for name in compared.common_dirs:
        found += differences(left / name, right / name)
    return found


@pytest.mark.slow  # npm ci and a build
def test_the_committed_build_is_what_the_sources_build_to(tmp_path: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("Node.js is not on PATH: the committed build cannot be rebuilt here")
    work = tmp_path / "ui"
    shutil.copytree(UI, work, ignore=shutil.ignore_patterns("node_modules"))
    out = tmp_path / "src" / "ailab" / "web" / "dist"  # where the build writes, relative to ui/
    env = {**os.environ, "npm_config_cache": str(Path.home() / ".cache" / "ailab" / "npm")}
    for command in ([npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"], [npm, "run", "build"]):
        done = subprocess.run(
            command, check=False, cwd=work, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"{' '.join(command[1:])} failed:\n{done.stdout}\n{done.stderr}"
    assert differences(DIST, out) == [], "rebuild the UI (cd ui && npm ci && npm run build) and commit it"


async def test_a_browser_gets_the_page_and_an_api_client_its_json(client: httpx.AsyncClient) -> None:
    page = await client.get("/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "<script" in page.text and "<script>" not in page.text  # scripts by URL only, none inline
    about = await client.get("/", headers={"Accept": "application/json"})
    assert about.json()["name"] == "AI-Lab"


async def test_assets_are_cached_for_good_and_sent_gzipped(client: httpx.AsyncClient) -> None:
    assets = sorted(p.name for p in (DIST / "assets").iterdir() if p.suffix == ".js")
    assert assets
    plain = await client.get(f"/ui/assets/{assets[0]}", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "immutable" in plain.headers["cache-control"]
    assert plain.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    packed = await client.get(f"/ui/assets/{assets[0]}", headers={"Accept-Encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip" and packed.content == plain.content  # httpx unpacks
    for path in (
        "/ui/../../config.py",
        "/ui/%2e%2e/%2e%2e/config.py",
        "/ui/nothing.js",
        f"/ui/assets/{assets[0]}.gz",
    ):
        assert (await client.get(path)).status_code == 404, path


async def test_the_api_docs_load_nothing_from_elsewhere(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "/ui/swagger/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    bundle = await client.get("/ui/swagger/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 100_000


def test_the_first_load_stays_small() -> None:
    index = (DIST / "index.html").read_text()
    first = [DIST / ref.lstrip("/").removeprefix("ui/") for ref in _refs(index)]
    gzipped = sum((path.with_name(path.name + ".gz")).stat().st_size for path in first)
    print(f"\nfirst load: {len(first)} files, {gzipped / 1024:.1f} KB gzipped")
    assert gzipped < 200 * 1024


def _refs(html: str) -> list[str]:
    import re

    return re.findall(r'(?:src|href)="(/ui/assets/[^"]+\.(?:js|css))"', html)
