"""A router's decision as structured output: who acts next, chosen from the allowed targets only.

A router (an agent with several routes) decides in a call of its own, before it writes anything: the
model sees its role, the request, the work so far and the choices with what each one does, and answers
one JSON object ``{"next": "<choice>"}`` whose schema (:func:`decision_schema`) admits only the allowed
targets. Each backend enforces the schema its own way (a llama.cpp grammar on the embedded model, OpenAI's
``json_schema`` response format, a forced Anthropic tool, Gemini's ``responseSchema``, Cohere's and
Ollama's JSON formats; see :class:`~ailab.providers.base.ResponseSchema`), so on those the decision
cannot be unreadable. Measured on the embedded SmolLM2-135M: a free-text ``NEXT:`` line was readable in
0 of 20 routing steps, the schema-constrained call in every one.

How a decision was reached is kept as ``routed_by`` (``GET /sessions/{id}/agent-states``):

- ``agent``: the router's own choice was read: from the structured answer, or, for a backend that
  ignores schemas or refused the request, by the lenient text parser (``routing.parse_decision``) as the
  last resort;
- ``default``: nothing readable came back (or a bound overrode the choice), so the route's default was
  taken;
- ``fixed``: an agent with a single route never decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ailab.services.chat.agents.definitions import END, AgentSpec, Route
from ailab.services.chat.agents.routing import parse_decision

DECISION_KEY = "next"
DECISION_MAX_TOKENS = 32  # {"next": "Reflection"} is about ten tokens; a grammar leaves no room to ramble
AGENT, DEFAULT, FIXED = "agent", "default", "fixed"


@dataclass(frozen=True, slots=True)
class Choice:
    """Where a router goes: the target (an agent or ``end``), how it was chosen, and a note on why."""

    target: str
    routed_by: str
    note: str = ""


def label(target: str) -> str:
    """How a target is shown to a model: agents by name, the end as ``END``."""
    return "END" if target == END else target


def decision_schema(targets: Sequence[str]) -> dict[str, Any]:
    """The JSON schema of a decision among ``targets``: ``{"next": <one of them>}``."""
    return {
        "type": "object",
        "properties": {
            DECISION_KEY: {
                "type": "string",
                "enum": [label(t) for t in targets],
                "description": "who acts next",
            }
        },
        "required": [DECISION_KEY],
        "additionalProperties": False,
    }


def decision_prompt(
    route: Route, agents: Mapping[str, AgentSpec], *, answered: bool, as_text: bool = False
) -> str:
    """The choices a router is given, each with what it does; ``answered``: an answer exists already.

    ``as_text`` asks for a ``NEXT:`` line instead of JSON, for a backend that refused the schema.
    """
    lines = ["Decide who acts next. The choices:"]
    for target in route.next:
        if target == END:
            what = (
                "the work so far answers the request: it goes to the user"
                if answered
                else "you answer the request yourself (greetings, small talk, simple questions)"
            )
        else:
            what = agents[target].role if target in agents else ""
        lines.append(f"- {label(target)}: {what}" if what else f"- {label(target)}")
    choices = "|".join(label(t) for t in route.next)
    if as_text:
        lines.append(f"Reply with one line: NEXT: <{choices}>")
    else:
        lines.append(f'Reply with JSON only: {{"{DECISION_KEY}": "<{choices}>"}}')
    return "\n".join(lines)


def read_decision(text: str, route: Route, known: Sequence[str]) -> Choice:
    """The choice in a decision answer (JSON, or text read leniently); the default when unreadable."""
    parsed = parse_decision(text, route.next, known)
    if parsed.target is not None:
        return Choice(parsed.target, AGENT)
    return Choice(route.default, DEFAULT, f"default route: {parsed.problem}")
