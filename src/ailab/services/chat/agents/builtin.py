"""The built-in organisation: the CEO, Worker, QA and Reflection agents and the ``agents`` pipeline.

It is the organisation of AI-Lab v2, made explicit and bounded::

            ┌──────────> Worker ──┐
    CEO ────┼──────────> QA ──────┼──> CEO ──> ... ──> end
     │      └──────────> Reflection┘
     └──> end (the CEO answers a simple request itself)

The CEO is the hub: at each of its steps it first decides who acts next, as structured output that
admits only its allowed targets (``decisions.py``), then writes: a short ANALYZE / PLAN brief for the
agent it hands the work to (the thought process of v2), or, when it ends the run before anyone answered,
the answer itself. Every other agent reports back to it. The CEO's default route (taken only when no
decision could be read) is Worker, and as a default never goes to an agent that already ran (see
``engine``), the next unreadable decision ends the run instead of looping. Only the Worker's output is
an answer by itself (``answers: true``); QA answers only through an ``ANSWER:`` section (a corrected
answer), Reflection never overrides one.

These are seeded into the database at first start (``catalog``) and may then be edited through
``PUT /agents/{name}`` and ``PUT /pipelines/agents``, but not deleted. A stored built-in that still holds
an earlier release's default (``SUPERSEDED_DEFAULTS``) is brought up to date at start; an edited one is
left alone. ``direct`` (one model, no agents) is code, not configuration: it is listed with the built-ins
and can be neither edited nor deleted.
"""

from __future__ import annotations

from ailab.services.chat.agents.definitions import AgentSpec, PipelineSpec, Route

AGENTS_PIPELINE = "agents"
DIRECT_PIPELINE = "direct"

CEO_PROMPT = """\
You are the CEO of AI-Lab, a small organisation of AI agents. You read the user's request, decide how \
it is best answered and coordinate your team: the Worker produces answers, QA checks work, Reflection \
says how the work could be better. You answer greetings, small talk and simple factual questions \
yourself, briefly. Anything to produce (code, a text, a solution, an explanation in steps) goes to the \
Worker; work that may be wrong goes to QA. When the work so far answers the request well, the work is \
done: do not repeat it."""

WORKER_PROMPT = """\
You are the Worker of AI-Lab: you implement and solve. Do exactly what the user asked, following the \
CEO's plan when there is one, and fixing what QA or Reflection pointed out. Give the complete result \
directly: working code in fenced blocks, concrete steps, exact figures. Write only the answer for the \
user; do not talk about the organisation or the other agents."""

QA_PROMPT = """\
You are QA at AI-Lab: you review the work so far against the user's request for correctness, \
completeness and clarity. List the problems you find, briefly and concretely. If the work is right, \
say so in one sentence. If it is wrong or incomplete and you can fix it, write the complete corrected \
answer for the user after a line starting with ANSWER:."""

REFLECTION_PROMPT = """\
You are Reflection at AI-Lab: you look at how the team worked on this request. Say in a few short \
points what went well, what was missing, and what the Worker should do differently to give a better \
answer. Do not write the answer yourself."""

BUILTIN_AGENTS: tuple[AgentSpec, ...] = (
    AgentSpec(
        name="CEO",
        role="analyses the request, plans, routes the work and decides when it is done",
        system_prompt=CEO_PROMPT,
        temperature=0.3,
        max_tokens=256,
        answers=False,
    ),
    AgentSpec(
        name="Worker",
        role="implementation, task execution and technical problem solving; writes the answer",
        system_prompt=WORKER_PROMPT,
        temperature=0.7,
        max_tokens=768,
    ),
    AgentSpec(
        name="QA",
        role="reviews the work so far: correctness, completeness, tests",
        system_prompt=QA_PROMPT,
        temperature=0.2,
        max_tokens=256,
        answers=False,
    ),
    AgentSpec(
        name="Reflection",
        role="reflects on how the team worked and how the answer could be improved",
        system_prompt=REFLECTION_PROMPT,
        temperature=0.5,
        max_tokens=256,
        answers=False,
    ),
)

BUILTIN_PIPELINE = PipelineSpec(
    name=AGENTS_PIPELINE,
    description="The AI-Lab organisation: the CEO plans and routes to Worker, QA or Reflection, "
    "and decides when the answer is done.",
    entry="CEO",
    routes={
        "CEO": Route(next=["Worker", "QA", "Reflection", "end"], default="Worker"),
        "Worker": Route(next=["CEO"], default="CEO"),
        "QA": Route(next=["CEO"], default="CEO"),
        "Reflection": Route(next=["CEO"], default="CEO"),
    },
)

BUILTIN_AGENT_NAMES = frozenset(agent.name for agent in BUILTIN_AGENTS)
# sha256 of the canonical JSON of built-in definitions that earlier releases seeded (the CEO that ended
# its reply with a free-text NEXT line, longer reviews): a stored one still equal to one of these is
# replaced by today's.
SUPERSEDED_DEFAULTS = frozenset(
    {
        "005e710b3fee4d8ee04446235433b70278ae2b048f078bbadf76859e9d9e9d67",  # CEO, AI-Lab 3.0.0
        "fb54ab1654ffb8be234f957d1ee284fe3e50a7cb16b91cf670d0b8a03cb0f164",  # QA, AI-Lab 3.0.0
        "8048f8a050a74663a80c12d3a6e3132b4384bb9333118c5a99b4897d93d2bb84",  # Reflection, AI-Lab 3.0.0
    }
)
BUILTIN_PIPELINE_NAMES = frozenset({AGENTS_PIPELINE, DIRECT_PIPELINE})
