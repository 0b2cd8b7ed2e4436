"""Where the v2 data is (:func:`plan_sources`) and reading all of it (:func:`read_sources`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ailab.services.legacy.database import read_database
from ailab.services.legacy.formats import (
    SQLITE_MAGIC,
    BadSource,
    LegacyData,
    Problem,
    ProgressFn,
    SourcePlan,
    read_conversation_file,
    read_state_file,
)


def _json_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".json" and p.is_file())


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def plan_sources(paths: Sequence[Path]) -> tuple[SourcePlan, list[Problem]]:
    """Sort the paths given into conversation files, state files and databases.

    A folder is a v2 root when it holds ``conversations/``, ``states/`` or ``ai_lab.db``; otherwise its
    ``*.json`` files are conversations (state files when the folder is named ``states``). A file is a
    database when it starts with SQLite's header, a JSON file otherwise (a state file when its folder is
    named ``states``). The same file named twice is read once.
    """
    plan = SourcePlan()
    problems: list[Problem] = []
    seen: set[Path] = set()

    def add(target: list[Path], path: Path) -> None:
        resolved = path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            target.append(path)

    for path in paths:
        try:
            if path.is_dir():
                found: list[tuple[list[Path], Path]] = []
                conversations, states, database = path / "conversations", path / "states", path / "ai_lab.db"
                if conversations.is_dir() or states.is_dir() or database.is_file():
                    for folder, target in (
                        (conversations, plan.conversation_files),
                        (states, plan.state_files),
                    ):
                        if folder.is_dir():
                            found += [(target, file) for file in _json_files(folder)]
                    if database.is_file():
                        found.append((plan.databases, database))
                else:
                    target = plan.state_files if path.name == "states" else plan.conversation_files
                    found += [(target, file) for file in _json_files(path)]
                if not found:
                    problems.append(Problem(str(path), "no AI-Lab v2 data found in this folder"))
                for target, file in found:
                    add(target, file)
            elif path.is_file():
                if _is_sqlite(path):
                    add(plan.databases, path)
                elif path.parent.name == "states":
                    add(plan.state_files, path)
                else:
                    add(plan.conversation_files, path)
            else:
                problems.append(Problem(str(path), "no such file or folder"))
        except OSError as exc:
            problems.append(Problem(str(path), f"cannot be read: {exc.strerror or exc}"))
    return plan, problems


# -- everything ---------------------------------------------------------------------------------------
def read_sources(plan: SourcePlan, progress: ProgressFn | None = None) -> LegacyData:
    """Read every planned source; bad ones become problems, the rest is returned."""
    data = LegacyData()
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress("read", done, plan.total)

    for path in plan.conversation_files:
        try:
            data.json_messages.append(read_conversation_file(path))
            data.files_read += 1
        except BadSource as exc:
            data.problems.append(Problem(str(path), str(exc)))
            data.skipped_messages += exc.items
        step()
    for path in plan.state_files:
        try:
            data.json_states.append(read_state_file(path))
            data.files_read += 1
        except BadSource as exc:
            data.problems.append(Problem(str(path), str(exc)))
            data.skipped_states += 1
        step()
    for path in plan.databases:
        try:
            contents, problems = read_database(path)
            data.databases.append(contents)
            data.problems.extend(problems)
            data.skipped_messages += contents.skipped_messages
            data.skipped_states += contents.skipped_states
            data.skipped_metrics += contents.skipped_metrics
            data.files_read += 1
        except BadSource as exc:
            data.problems.append(Problem(str(path), str(exc)))
        step()
    return data
