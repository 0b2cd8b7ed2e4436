"""The LLM benchmark's bounds and default prompt, apart from its engine (``benchmark.py``): the API's
request model and the ``ai-lab bench`` options state them without loading the engine and its providers."""

DEFAULT_PROMPT = "Explain in two sentences what a benchmark measures."
MAX_ITERATIONS = 100
MAX_CONCURRENCY = 16
MAX_TOKENS = 4096
MAX_MODELS = 16
MAX_PROMPT_CHARS = 100_000
