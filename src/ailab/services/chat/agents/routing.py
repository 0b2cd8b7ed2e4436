"""Reading an agent's routing decision and its answer out of free text.

The protocol an agent with several routes is asked to follow (see ``engine.routing_instructions``)::

    ANALYZE: <what is asked>
    PLAN: <how to answer it>
    ... the agent's text; after ``ANSWER:`` the answer for the user, if it answers itself ...
    NEXT: Worker | QA | Reflection | END

Small models follow it loosely, so :func:`parse_decision` is lenient:

1. a JSON object with a ``next``/``decision``/``route`` key, else the last ``<marker>: <target>``: at the
   start of a line the marker is one of NEXT, DECIDE, DECISION, ROUTE, ROUTING, DELEGATE, ASSIGN, HANDOFF
   (any case, markdown and punctuation around it ignored, ``:``, ``=``, ``-`` or ``->`` as separator);
   inside a line only NEXT, DECIDE or DECISION followed by ``:``, ``=`` or ``->``;
2. the target is matched word by word against the allowed agents (case, ``_``/``-``/spaces ignored) and
   synonyms: END also reads as done, finish, stop, complete, none, final, answer, user, respond; Worker as
   developer, engineer, implement; QA as quality, review, reviewer, test; Reflection as reflect.

The result is a :class:`Parsed` with the chosen target, or ``None`` and the reason it was unreadable
(``no decision found``) or not allowed (``'QA' is not allowed here``); the engine then takes the
pipeline's default route. Parsing never raises.

A step's **answer text** (:func:`answer_text`): the text after an ``ANSWER:`` marker when there is one;
otherwise the whole output less the protocol lines (ANALYZE, PLAN, DECIDE, EXPLAIN, NEXT, ... and a JSON
decision object).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from ailab.services.chat.agents.definitions import END

_MARKERS = (
    r"next|next\s+agent|decide|decision|route|routing|delegate|delegate\s+to|assign|assign\s+to|handoff"
)
_DECISION_LINE = re.compile(
    rf"^[\s>*_#`\-\[]*(?:{_MARKERS})[\s*_`\]]*(?:[:=]|->|→|-)\s*(?P<value>.+?)\s*$",
    re.IGNORECASE | re.MULTILINE,
)
# Mid-line, only the unambiguous markers count: "... so that is all. NEXT: END".
_DECISION_INLINE = re.compile(
    r"\b(?:next|decide|decision)\b[\s*_`\]]*(?::|=|->|→)\s*(?P<value>[^\n]+?)\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_PROTOCOL_LINE = re.compile(
    r"^[\s>*_#`\-\[]*(?:analy[sz]e|analysis|plan|decide|decision|explain|explanation|reason|next|"
    r"next\s+agent|route|routing|delegate|assign|handoff)[\s*_`\]]*(?:[:=]|->|→).*$",
    re.IGNORECASE | re.MULTILINE,
)
_ANSWER_MARKER = re.compile(r"^[\s>*_#`\-\[]*(?:final\s+)?answer[\s*_`\]]*:\s*", re.IGNORECASE | re.MULTILINE)
_JSON_OBJECT = re.compile(r"\{[^{}]{0,500}\}")
_WORD = re.compile(r"[a-z0-9_-]+")
_DECISION_KEYS = ("next", "decision", "route", "next_agent", "agent")

SYNONYMS: dict[str, tuple[str, ...]] = {
    END: ("end", "done", "finish", "finished", "stop", "complete", "completed", "none", "final", "answer",
          "user", "respond", "reply", "nobody"),
    "worker": ("worker", "developer", "engineer", "implement", "implementation", "dev"),
    "qa": ("qa", "quality", "review", "reviewer", "test", "tester", "testing"),
    "reflection": ("reflection", "reflect", "retrospective"),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Parsed:
    """A decision read from text: the target, or None with the reason it could not be used."""

    target: str | None
    raw: str | None = None  # what the agent wrote after the marker
    problem: str | None = None


def _key(name: str) -> str:
    return re.sub(r"[\s_-]+", "", name.lower())


def _vocabulary(known: Iterable[str]) -> dict[str, str]:
    """word -> target, for every agent of the pipeline and ``end``."""
    words: dict[str, str] = {}
    for name in [*known, END]:
        for synonym in SYNONYMS.get(name.lower(), ()):
            words.setdefault(synonym, name)
    for name in [*known, END]:  # exact names win over synonyms
        words[_key(name)] = name
    return words


def _match(value: str, vocabulary: dict[str, str]) -> str | None:
    value = value.lower()
    squeezed = _key(re.sub(r"[^a-z0-9\s_-]", " ", value))
    if squeezed in vocabulary:
        return vocabulary[squeezed]
    for word in _WORD.findall(value):
        target = vocabulary.get(_key(word))
        if target is not None:
            return target
    return None


def _json_decision(text: str) -> str | None:
    for candidate in reversed(_JSON_OBJECT.findall(text)):
        try:
            data = orjson.loads(candidate)
        except orjson.JSONDecodeError:
            continue
        if isinstance(data, dict):
            for key in _DECISION_KEYS:
                if isinstance(data.get(key), str):
                    return str(data[key])
    return None


def parse_decision(text: str, allowed: list[str], known: Iterable[str] = ()) -> Parsed:
    """The target an agent chose among ``allowed`` (agent names and/or ``end``); never raises.

    ``known`` are all agents of the pipeline, so a decision for an existing agent that is not allowed
    here is reported as such rather than as unreadable.
    """
    raw = _json_decision(text)
    if raw is None:
        found = [*_DECISION_LINE.finditer(text), *_DECISION_INLINE.finditer(text)]
        raw = max(found, key=lambda m: m.start("value")).group("value") if found else None
    if raw is None:
        return Parsed(None, None, "no decision found")
    target = _match(raw, _vocabulary([*known, *allowed]))
    if target is None:
        return Parsed(None, raw, f"unreadable decision {raw[:60]!r}")
    if target not in allowed:
        return Parsed(None, raw, f"{target!r} is not allowed here (allowed: {', '.join(allowed)})")
    return Parsed(target, raw)


def protocol_lines(text: str) -> list[str]:
    """The ANALYZE / PLAN / DECIDE / EXPLAIN / NEXT lines of an output, stripped."""
    return [line.strip().strip("*_`#> ").strip() for line in _PROTOCOL_LINE.findall(text)]


def has_answer_marker(text: str) -> bool:
    """Whether the output has an ``ANSWER:`` line."""
    return _ANSWER_MARKER.search(text) is not None


def answer_text(text: str) -> str:
    """The part of an output meant for the user (see the module docstring); may be empty."""
    markers = list(_ANSWER_MARKER.finditer(text))
    if markers:
        text = text[markers[-1].end() :]
    text = _PROTOCOL_LINE.sub("", text)
    text = _DECISION_INLINE.sub("", text)
    text = _JSON_OBJECT.sub(lambda m: "" if _json_decision(m.group(0)) else m.group(0), text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
