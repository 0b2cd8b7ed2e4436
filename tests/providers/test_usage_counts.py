"""Token counts as upstreams report them: a count that is no count (a string, null, negative, a list) is
none, and never fails the answer it came with (it would have been a 500)."""

from __future__ import annotations

from typing import Any

import pytest

from ailab.providers import anthropic, cohere, gemini, ollama, openai_wire
from ailab.providers.base import Usage, token_count

ODD = ["12", None, -3, [5], {"n": 1}, float("nan"), float("inf"), 2**70, "many"]


@pytest.mark.parametrize(("value", "count"), [(12, 12), (12.0, 12), (0, 0), *[(odd, 0) for odd in ODD]])
def test_token_count(value: Any, count: int) -> None:
    assert token_count(value) == count


@pytest.mark.parametrize("odd", ODD)
def test_every_provider_s_usage_takes_odd_counts(odd: Any) -> None:
    assert openai_wire.parse_usage({"prompt_tokens": odd, "completion_tokens": 7}) == Usage(0, 7)
    assert anthropic.parse_usage({"input_tokens": 7, "output_tokens": odd}) == Usage(7, 0)
    assert gemini.parse_usage({"promptTokenCount": odd, "candidatesTokenCount": 7}) == Usage(0, 7)
    assert ollama.parse_usage({"prompt_eval_count": 7, "eval_count": odd}) == Usage(7, 0)
    assert cohere.parse_usage({"tokens": {"input_tokens": odd, "output_tokens": 7}}) == Usage(0, 7)
    assert cohere.parse_usage({"tokens": odd}) == Usage(0, 0)
