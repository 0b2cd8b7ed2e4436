"""The web UI, as a person uses it: sign in, chat (streamed, Markdown, safe), Stop, reload and switch
mid-answer, the sessions sidebar, keys, users and tokens, the dashboard, a phone-sized screen, the
keyboard alone, and an accessibility check."""

from __future__ import annotations

import re
import time
from typing import Any

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.e2e.conftest import ECHO_MODEL, api, sign_in
from tests.support.server import LiveServer

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
    page.goto("/")
    page.get_by_role("button", name="Sign in").wait_for()
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


def test_the_sessions_sidebar(page: Any) -> None:
    sign_in(page)
    send(page, "first chat about apples", model=ECHO_MODEL)
    wait_answered(page, 2)
    page.get_by_role("button", name="New chat").click()
    send(page, "second chat about pears", model=ECHO_MODEL)
    wait_answered(page, 2)
    sidebar = page.get_by_role("navigation", name="Sessions")
    sidebar.get_by_text("second chat about pears").wait_for()
    page.get_by_label("Search chats").fill("apples")
    sidebar.get_by_text("second chat about pears").wait_for(state="hidden")
    assert sidebar.get_by_text("first chat about apples").is_visible()
    page.get_by_label("Search chats").fill("")


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


def test_dashboard_charts_have_data(page: Any) -> None:
    sign_in(page)
    send(page, "hello", model=ECHO_MODEL)
    wait_answered(page, 2)
    page.get_by_role("link", name="Dashboard").click()
    page.get_by_role("heading", name="Dashboard").wait_for()
    page.get_by_role("heading", name="Machine, live").wait_for()
    page.locator("canvas").first.wait_for()
    assert page.locator("canvas").count() >= 2  # live machine charts, and latency over time
    expect(page.get_by_role("region", name="Latency")).to_contain_text("/chat")


def test_a_phone_screen_has_no_sideways_scroll(browser: Any, server: LiveServer) -> None:
    context = browser.new_context(base_url=server.base_url, viewport={"width": 375, "height": 740})
    phone = context.new_page()
    sign_in_phone = phone
    sign_in_phone.goto("/")
    sign_in_phone.get_by_label("Username").fill("admin")
    from tests.conftest import ADMIN_PASSWORD

    sign_in_phone.get_by_label("Password").fill(ADMIN_PASSWORD)
    sign_in_phone.get_by_role("button", name="Sign in").click()
    phone.get_by_label("Message").wait_for()
    for view in ("/#/chat", "/#/keys", "/#/dashboard", "/#/users"):
        phone.goto(view)
        phone.wait_for_load_state("networkidle")
        width = phone.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 375, (view, width)
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
