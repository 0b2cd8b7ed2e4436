"""Fake cloud providers: real HTTP servers on 127.0.0.1 speaking each provider's wire format.

One module per provider (``openai_server`` also holds the Azure OpenAI and Hugging Face variants), all
built on :class:`tests.fakes.base.FakeServer`: it records every request (``.requests`` of
:class:`~tests.fakes.base.RecordedRequest`: method, path, query, headers, json) and has switches for the
behaviours tests need: a wrong key gets the provider's own 401 (Gemini: its 400 ``API_KEY_INVALID``),
an unknown model 404, ``fail_status = 429`` (with ``Retry-After: retry_after``) or 500, ``slow`` (held
until ``release`` is set: timeouts without sleeping), ``stall_after`` (a stream stops mid-way),
``endless`` (a stream that ends only when the client goes; ``disconnected`` is then set). Each fake with an
embeddings endpoint answers :func:`tests.fakes.base.bag_of_words_vector` of every text (deterministic,
texts sharing words are near), for any model whose name contains ``embed``.

In a test folder's ``conftest.py``, import the fixtures you use (pytest only honours
``pytest_plugins`` in the root conftest)::

    from tests.fakes.fixtures import fake_openai, fake_anthropic  # noqa: F401

    async def test_gateway(fake_openai, make_settings):
        settings = make_settings(openai_base_url=fake_openai.base_url, openai_api_key=fake_openai.api_key)
        ...
        assert fake_openai.last.json["model"] == "gpt-4o-mini"

Fixtures: ``fake_openai``, ``fake_openai_compat`` (no key needed), ``fake_azure``, ``fake_huggingface``,
``fake_anthropic``, ``fake_gemini``, ``fake_cohere``, ``fake_ollama``, ``closed_port_url``.
Outside pytest: ``async with FakeOpenAI() as fake: ...``, or standalone (any key accepted, nothing
recorded, fast enough to benchmark a gateway with)::

    python -m tests.fakes.openai_server --port 9100   # then http://127.0.0.1:9100/v1
"""
