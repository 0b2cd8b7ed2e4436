"""A ``/chat`` turn and the pipelines that answer it: ``direct`` and the agent engine."""
