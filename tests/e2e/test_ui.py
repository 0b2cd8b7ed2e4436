"""The web UI, as a person uses it: sign in, chat (streamed, Markdown, safe), Stop, reload and switch
mid-answer, the sessions sidebar, keys, users and tokens, the dashboard, a phone-sized screen, the
keyboard alone, and an accessibility check."""

from __future__ import annotations

import re
import time
from typing import Any

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, ECHO_MODEL, api, sign_in
from tests.support.server import ADMIN_PASSWORD, LiveServer

LOCAL = "local/smollm2-135m-instruct"


def conversation(page: Any) -> Any:
    return page.get_by_role("log", name="Conversation")


def send(page: Any, message: str, model: str | None = None) -> None:
    if model is not None:
        page.get_by_label("Model").select_option(model)
    page.get_by_label("Message").fill(message)
    page.get_by_role("button", name="Send").click()


def wait_answered(page: Any, count: int) -> Any:
    """The ``count``-th article once the run has ended (Stop is off again)."""
    articles = conversation(page).get_by_role("article")
    articles.nth(count - 1).wait_for()
    expect(page.get_by_role("button", name="Stop")).to_be_disabled(timeout=60_000)
    return articles.nth(count - 1)


def test_sign_in_and_a_streamed_markdown_answer(page: Any) -> None:
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto("/")
    page.get_by_role("button", name="Sign in").wait_for()
    page.wait_for_load_state("networkidle")
    assert errors == []  # a first visit signed out is not an error (no 401 in the console)
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").wait_for()
    sign_in(page)
    for link in ("Chat", "Keys", "Dashboard", "Users"):
        page.get_by_role("link", name=link).wait_for()

    send(page, "**bold** and `code` and\n\n- one\n- two", model=ECHO_MODEL)
    answer = wait_answered(page, 2)
    assert answer.locator("strong").inner_text() == "bold"
    assert answer.locator("code").first.inner_text() == "code"
    assert answer.locator("li").count() == 2

    send(page, "What is the capital of France?", model=LOCAL)  # the embedded model, streamed
    answer = wait_answered(page, 4)
    assert answer.inner_text().strip()


HOSTILE = [
    "<script>window.__pwned = 1</script>",
    '<img src="x" onerror="window.__pwned = 1">',
    "[click me](javascript:window.__pwned=1)",
    '<svg onload="window.__pwned = 1"><circle r="4"/></svg>',
    '<iframe srcdoc="<script>parent.__pwned = 1</script>"></iframe>',
    '<a href="#" onclick="window.__pwned = 1">x</a>',
]


def test_hostile_answers_run_nothing(page: Any) -> None:
    sign_in(page)
    for index, payload in enumerate(HOSTILE, start=1):
        send(page, payload, model=ECHO_MODEL)
        wait_answered(page, 2 * index)
    log = conversation(page)
    log.locator("a").first.click() if log.locator("a").count() else None
    assert page.evaluate("() => window.__pwned") is None
    assert log.locator("script, iframe, svg [onload], [onerror], [onclick]").count() == 0
    hrefs = log.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href') || '')")
    assert not any(href.strip().lower().startswith("javascript:") for href in hrefs)
    # What the person typed shows as typed (as text, tags and all).
    assert HOSTILE[0] in log.get_by_role("article").first.inner_text()


def test_stop_cancels_the_run(page: Any, server: LiveServer) -> None:
    sign_in(page)
    send(page, "Write a very long story about a dragon and a knight.", model=LOCAL)
    conversation(page).get_by_role("article").nth(1).wait_for()
    page.get_by_role("button", name="Stop").click()
    wait_answered(page, 2)
    session_id = page.evaluate("() => location.hash").rsplit("/", 1)[-1]
    with api(server) as client:
        runs = client.get(f"/sessions/{session_id}/runs").json()["items"]
        assert [run["status"] for run in runs] == ["cancelled"]


def test_reload_and_switching_chats_mid_answer_lose_nothing(page: Any, server: LiveServer) -> None:
    sign_in(page)
    send(page, "Write a very long story about a lighthouse keeper.", model=LOCAL)
    conversation(page).get_by_role("article").nth(1).wait_for()
    page.reload()  # mid-answer
    answer = wait_answered(page, 2)
    session_id = page.evaluate("() => location.hash").rsplit("/", 1)[-1]
    with api(server) as client:
        stored = client.get(f"/sessions/{session_id}/messages").json()["items"]
    assert stored[-1]["role"] == "assistant" and stored[-1]["status"] == "complete"
    assert " ".join(stored[-1]["content"].split())[:40] in " ".join(answer.inner_text().split())

    send(page, "Write another very long story, about a fox.", model=LOCAL)
    conversation(page).get_by_role("article").nth(3).wait_for()
    page.get_by_role("button", name="New chat").click()
    page.get_by_role("navigation", name="Sessions").get_by_role("link").first.wait_for()
    page.goto(f"/#/chat/{session_id}")
    answer = wait_answered(page, 4)
    with api(server) as client:
        stored = client.get(f"/sessions/{session_id}/messages").json()["items"]
    assert stored[-1]["status"] == "complete"
    assert " ".join(stored[-1]["content"].split())[:40] in " ".join(answer.inner_text().split())


def test_the_sessions_sidebar(page: Any, server: LiveServer) -> None:
    sign_in(page)
    send(page, "first chat about apples", model=ECHO_MODEL)
    wait_answered(page, 2)
    page.get_by_role("button", name="New chat").click()
    send(page, "second chat about pears", model=ECHO_MODEL)
    wait_answered(page, 2)
    sidebar = page.get_by_role("navigation", name="Sessions")
    sidebar.get_by_text("second chat about pears").wait_for()

    # Search asks the server (every session, not only the pages shown).
    with page.expect_response(lambda r: "/sessions?" in r.url and "q=APPLES" in r.url):
        page.get_by_label("Search chats").fill("APPLES")
    sidebar.get_by_text("second chat about pears").wait_for(state="hidden")
    assert sidebar.get_by_role("link").all_inner_texts() == ["first chat about apples"]
    page.get_by_label("Search chats").fill("")
    sidebar.get_by_text("second chat about pears").wait_for()

    # Rename: the new title shows and is stored.
    apples = sidebar.get_by_role("listitem").filter(has_text="first chat about apples")
    apples.get_by_role("button", name="Rename").click()
    page.get_by_label("New title").fill("Apple varieties")
    page.get_by_label("New title").press("Enter")
    sidebar.get_by_role("link", name="Apple varieties").wait_for()
    with api(server) as client:
        titles = [s["title"] for s in client.get("/sessions").json()["items"]]
    assert "Apple varieties" in titles and "first chat about apples" not in titles

    # Delete (after a confirmation): gone from the list and from the server.
    pears = sidebar.get_by_role("listitem").filter(has_text="second chat about pears")
    pears_id = pears.get_by_role("link").get_attribute("href").rsplit("/", 1)[-1]
    pears.get_by_role("button", name="Delete").click()
    sidebar.get_by_role("button", name="Yes, delete").click()
    sidebar.get_by_text("second chat about pears").wait_for(state="hidden")
    with api(server) as client:
        assert client.get(f"/sessions/{pears_id}").status_code == 404


def test_the_agent_trace_of_an_answer_is_folded_and_survives_a_reload(page: Any) -> None:
    sign_in(page)
    page.get_by_label("Pipeline").select_option("agents")
    send(page, "Name one colour.", model=ECHO_MODEL)
    answer = wait_answered(page, 2)
    trace = answer.locator("details.trace").filter(has_text="Agent trace")
    trace.wait_for()
    assert trace.get_attribute("open") is None  # folded by default
    trace.locator("summary").click()
    expect(trace).to_contain_text("CEO")
    steps = trace.locator("summary").inner_text()

    page.reload()  # the stored steps are matched to the stored answer by its run
    answer = wait_answered(page, 2)
    again = answer.locator("details.trace").filter(has_text="Agent trace")
    again.wait_for()
    assert again.locator("summary").inner_text() == steps


def test_a_500_message_session_opens_without_a_stall(page: Any, server: LiveServer) -> None:
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}: **bold** `code` text " * 3}
        for i in range(500)
    ]
    document = {"format": "ailab.session.v1", "session": {"title": "long chat"}, "messages": messages}
    with api(server) as client:
        session_id = client.post("/sessions/import", json=document).json()["id"]
    sign_in(page)
    started = time.perf_counter()
    page.goto(f"/#/chat/{session_id}")
    conversation(page).get_by_role("article").filter(has_text="message 499:").wait_for()
    elapsed = time.perf_counter() - started
    print(f"\n500-message session shown in {elapsed * 1000:.0f} ms")
    assert elapsed < 10, elapsed  # a bound for a broken page, not a benchmark


def test_keys_add_test_delete(page: Any, server: LiveServer) -> None:
    sign_in(page)
    page.get_by_role("link", name="Keys").click()
    page.get_by_role("heading", name="Provider keys").wait_for()
    card = page.get_by_role("region", name="openai", exact=True)
    card.get_by_label("API key for openai").fill("not a key")
    card.get_by_role("button", name="Save openai key").click()
    card.get_by_role("alert").wait_for()  # the format hint says what was expected
    key = "sk-proj-" + "e2e0123456789" * 4
    card.get_by_label("API key for openai").fill(key)
    card.get_by_role("button", name="Save openai key").click()
    expect(card.locator("dd code")).to_have_text(re.compile(r".*" + key[-4:] + "$"))
    card.get_by_role("button", name="Test openai key").click()
    expect(card.get_by_role("status")).to_contain_text("valid")
    assert key not in page.content()  # shown masked only
    card.get_by_role("button", name="Delete openai key").click()
    card.get_by_role("button", name="Yes, delete").click()
    expect(card.get_by_role("status")).to_contain_text("deleted")
    with api(server) as client:
        assert "openai" not in [
            k["service_name"] for k in client.get("/api-keys").json()["configured_services"]
        ]


def test_users_and_tokens(page: Any, server: LiveServer) -> None:
    sign_in(page)
    page.get_by_role("link", name="Users").click()
    page.get_by_role("heading", name="Users", exact=True).wait_for()
    form = page.get_by_role("form", name="Add a user")
    form.get_by_label("Username").fill("carol")
    form.get_by_label("Password").fill("a-password-for-carol")
    form.get_by_role("button", name="Add user").click()
    page.get_by_label("Role of carol").wait_for()
    with api(server) as client:
        assert "carol" in [u["username"] for u in client.get("/users").json()["items"]]

    page.goto("/#/tokens")
    page.get_by_label("Token name").fill("my script")
    page.get_by_role("button", name="Create token").click()
    shown = page.locator(".created code").inner_text()
    assert shown.startswith("ailab_")
    page.get_by_role("button", name="Done").click()
    assert shown not in page.content()  # shown once
    page.get_by_role("button", name="Revoke my script").click()
    page.get_by_role("button", name=re.compile("^Yes")).click()
    with api(server) as client:
        tokens = client.get("/auth/tokens").json()["items"]
        assert client.get("/auth/me", headers={"Authorization": f"Bearer {shown}"}).status_code == 401
    assert tokens == [] or all(t["revoked_at"] for t in tokens)


def chart_points(figure: Any) -> int:
    """The points a chart draws (its ``data-points``), once it is there; its hidden table has as many rows."""
    figure.wait_for()
    points = int(figure.get_attribute("data-points"))
    assert figure.locator("table.chart-data tbody tr").count() == points
    return points


def test_dashboard_charts_have_data(page: Any) -> None:
    sign_in(page)
    send(page, "hello", model=ECHO_MODEL)
    wait_answered(page, 2)
    page.get_by_role("link", name="Dashboard").click()
    page.get_by_role("heading", name="Dashboard").wait_for()
    page.get_by_role("heading", name="Machine, live").wait_for()
    # The server's last minutes of readings: the machine chart has points as soon as it is drawn.
    assert chart_points(page.get_by_role("figure", name=re.compile("^CPU and memory use"))) > 0
    latency = page.get_by_role("region", name="Latency")
    expect(latency).to_contain_text("/chat")
    # Over time, from the stored history: the chat just made is in it (route and model, TTFT, speed).
    expect(latency.get_by_label("Route")).to_have_value("POST /chat")
    for name in (
        "latency of POST /chat",
        "duration of each model",
        "time to first token",
        "tokens per second",
    ):
        figure = latency.get_by_role("figure", name=name)  # a part of the name, any case
        assert chart_points(figure) > 0, name
        assert figure.locator("canvas").count() == 1
    expect(latency.get_by_role("figure", name="time to first token")).to_contain_text(ECHO_MODEL)
    latency.get_by_label("Window").select_option(label="last hour")
    expect(latency.get_by_role("figure", name="over the last hour").first).to_be_visible()
    assert chart_points(latency.get_by_role("figure", name="latency of POST /chat")) > 0
    # A benchmark started from the form: its results drawn per iteration.
    bench = page.get_by_role("region", name="Benchmark")
    bench.get_by_label("Model").select_option(ECHO_MODEL)
    bench.get_by_label("Iterations").fill("2")
    bench.get_by_label("Max tokens").fill("16")
    bench.get_by_role("button", name="Run benchmark").click()
    assert chart_points(bench.get_by_role("figure", name="Time to first token of each run")) > 0
    assert chart_points(bench.get_by_role("figure", name="Tokens per second of each run")) > 0
    # Screenshots of the whole page (it scrolls inside its main area: a viewport as tall as the page),
    # on a desktop and on a phone, where the charts must fit the screen.
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name, width in (("desktop", 1280), ("phone", 375)):
        page.set_viewport_size({"width": width, "height": 800})
        # the charts follow their boxes' width: wait until nothing is wider than the screen
        page.wait_for_function("width => document.documentElement.scrollWidth <= width", arg=width)
        tall = page.evaluate("() => document.getElementById('main').scrollHeight") + 200
        page.set_viewport_size({"width": width, "height": min(tall, 8000)})
        page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"))


def test_a_phone_screen_has_no_sideways_scroll(browser: Any, server: LiveServer) -> None:
    context = browser.new_context(base_url=server.base_url, viewport={"width": 375, "height": 740})
    phone = context.new_page()
    phone.goto("/")
    phone.get_by_label("Username").fill("admin")
    phone.get_by_label("Password").fill(ADMIN_PASSWORD)
    phone.get_by_role("button", name="Sign in").click()
    phone.get_by_label("Message").wait_for()  # the sessions sidebar is folded away on a phone
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for view in ("chat", "keys", "dashboard", "users"):
        phone.goto(f"/#/{view}")
        phone.wait_for_load_state("networkidle")
        width = phone.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 375, (view, width)
        phone.screenshot(path=str(ARTIFACTS / f"phone-{view}.png"))
    context.close()


def test_keyboard_alone_sends_and_stops(page: Any) -> None:
    sign_in(page)
    page.get_by_label("Model").select_option(LOCAL)
    message = page.get_by_label("Message")
    message.focus()
    page.keyboard.type("Write a very long poem")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("about the sea.")
    assert message.input_value() == "Write a very long poem\nabout the sea."
    page.keyboard.press("Enter")
    conversation(page).get_by_role("article").nth(1).wait_for()
    page.keyboard.press("Escape")
    wait_answered(page, 2)


def test_no_serious_accessibility_violation(page: Any) -> None:
    axe = Axe()
    page.goto("/")
    page.get_by_label("Username").wait_for()
    found = {"sign-in": axe.run(page)}
    sign_in(page)
    for name, view in (("chat", "/#/chat"), ("keys", "/#/keys"), ("dashboard", "/#/dashboard")):
        page.goto(view)
        page.wait_for_load_state("networkidle")
        found[name] = axe.run(page)
    serious = {
        name: [v["id"] for v in result.response["violations"] if v["impact"] in ("serious", "critical")]
        for name, result in found.items()
    }
    assert all(not ids for ids in serious.values()), serious
