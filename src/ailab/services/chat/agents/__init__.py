"""The agent pipeline: CEO, Worker, QA and Reflection, configurable, stored and streamed.

- ``definitions``: agents and pipelines as validated data (the YAML/JSON shape).
- ``routing``: reading a routing decision and the answer out of an agent's text.
- ``engine``: the graph runner (``AgentPipeline``), a ``ChatPipeline`` for ``/chat``; its docstring
  draws the states of a run.
- ``builtin``: the built-in organisation (``agents``) and its prompts.
- ``catalog``: storage in the database, seeding from ``<data dir>/pipelines.yaml``, and the
  ``PipelineLookup`` that serves ``direct``, ``agents`` and the pipelines defined at run time.
"""

from ailab.services.chat.agents.catalog import AgentCatalog
from ailab.services.chat.agents.engine import AgentPipeline, Bounds, StepRecord

__all__ = ["AgentCatalog", "AgentPipeline", "Bounds", "StepRecord"]
