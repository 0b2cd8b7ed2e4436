"""Files in the chat, as a person attaches them: through the Attach files button, a drop or a paste;
each a chip that uploads at once and says how it goes; sent with the message, shown (and downloadable)
under it before and after a reload; a refusal, of a file or of the message, in the server's words."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, ECHO_MODEL, UPLOAD_LIMIT, api, sign_in
from tests.e2e.test_ui import LOCAL, conversation, wait_answered
from tests.support.images import png
from tests.support.server import ADMIN_PASSWORD, LiveServer

NOTES = b"Project Falcon launches on 14 March.\nThe budget is 12,000 euros.\n"


def text_file(name: str, content: bytes, mime: str = "text/plain") -> dict[str, Any]:
    return {"name": name, "mimeType": mime, "buffer": content}


def attach(page: Any, *files: dict[str, Any]) -> None:
    """Choose ``files`` in the file picker that the Attach files button opens."""
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Attach files").click()
    assert chooser.value.is_multiple()
    chooser.value.set_files(list(files))


def chips(page: Any) -> Any:
    return page.get_by_role("list", name="Attached files").get_by_role("listitem")


def chip(page: Any, name: str) -> Any:
    return chips(page).filter(has_text=name)


def sent_body(request: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(request.post_data or "{}")
    return body


def test_attach_send_and_reload(page: Any, server: LiveServer) -> None:
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
    sign_in(page)
    page.get_by_label("Model").select_option(ECHO_MODEL)
    picture = png((40, 30))
    attach(
        page,
        text_file("falcon-notes.txt", NOTES),
        {"name": "chart.png", "mimeType": "image/png", "buffer": picture},
    )
    expect(chips(page)).to_have_count(2)
    for name in ("falcon-notes.txt", "chart.png"):
        expect(chip(page, name)).to_have_class(re.compile(r"\bready\b"))
        chip(page, name).get_by_role("button", name=f"Remove {name}").wait_for()
    expect(chip(page, "falcon-notes.txt")).to_contain_text(f"{len(NOTES)} B")
    expect(chip(page, "chart.png").locator("img")).to_have_js_property("complete", True)

    page.get_by_label("Message").fill("When does Project Falcon launch?")
    with page.expect_request(lambda r: r.url.endswith("/chat") and r.method == "POST") as posted:
        page.get_by_role("button", name="Send").click()
    file_ids = sent_body(posted.value)["files"]
    assert len(file_ids) == 2
    expect(page.get_by_role("list", name="Attached files")).to_have_count(0)  # the chips clear

    question = conversation(page).get_by_role("article").first
    expect(question.get_by_role("link", name="falcon-notes.txt")).to_be_visible()  # while it is sent, too
    answer = wait_answered(page, 2)
    expect(answer).to_contain_text("Files used: falcon-notes.txt")
    expect(answer).to_contain_text("When does Project Falcon launch?")  # the fake echoes the question

    with api(server) as client:
        stored = {f["id"]: f for f in client.get("/files").json()["items"]}
    assert set(file_ids) <= set(stored)

    page.reload()  # the stored message has its files
    question = conversation(page).get_by_role("article").first
    link = question.get_by_role("link", name="falcon-notes.txt")
    expect(link).to_be_visible()
    expect(question.get_by_role("link", name="chart.png")).to_be_visible()
    expect(question.locator("img")).to_have_js_property("complete", True)
    notes_id = next(i for i in file_ids if stored[i]["filename"] == "falcon-notes.txt")
    assert link.get_attribute("href") == f"/files/{notes_id}/content"
    with page.expect_download() as downloaded:
        link.click()
    assert downloaded.value.suggested_filename == "falcon-notes.txt"
    assert Path(downloaded.value.path()).read_bytes() == NOTES
    expect(wait_answered(page, 2)).to_contain_text("Files used: falcon-notes.txt")
    assert console == []


def test_an_image_for_a_model_that_cannot_see_is_refused_in_the_servers_words(page: Any) -> None:
    sign_in(page)
    page.get_by_label("Model").select_option(LOCAL)
    attach(page, {"name": "photo.png", "mimeType": "image/png", "buffer": png((8, 8))})
    expect(chip(page, "photo.png")).to_have_class(re.compile(r"\bready\b"))
    page.get_by_label("Message").fill("What is in this picture?")
    page.get_by_role("button", name="Send").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("The message was not sent")
    expect(alert).to_contain_text(re.compile(r"local/smollm2-135m-instruct.*cannot read images"))
    # nothing was lost: the text and the chip are back, to change the model or remove the image
    expect(page.get_by_label("Message")).to_have_value("What is in this picture?")
    expect(chip(page, "photo.png")).to_have_class(re.compile(r"\bready\b"))
    expect(conversation(page).get_by_role("article")).to_have_count(0)

    page.get_by_role("button", name="Remove photo.png").click()
    expect(chips(page)).to_have_count(0)
    expect(page.get_by_label("Message")).to_be_focused()


def test_refused_files_show_why_and_are_not_sent(page: Any) -> None:
    sign_in(page)
    page.get_by_label("Model").select_option(ECHO_MODEL)
    attach(
        page,
        text_file("report.pdf", b"This is plain text, not a PDF at all.\n", "application/pdf"),
        text_file("huge.txt", b"a" * (UPLOAD_LIMIT + 1024)),
        text_file("ok.md", b"# Fine\n\nA small note.\n", "text/markdown"),
    )
    lying, huge = chip(page, "report.pdf"), chip(page, "huge.txt")
    expect(lying).to_have_class(re.compile(r"\bfailed\b"))
    expect(huge).to_have_class(re.compile(r"\bfailed\b"))
    expect(chip(page, "ok.md")).to_have_class(re.compile(r"\bready\b"))
    lying_text, huge_text = lying.inner_text(), huge.inner_text()
    assert "pdf" in lying_text.lower(), lying_text  # the server's detail: not what its name says
    assert re.search(r"larger|too (big|large)|limit|bytes", huge_text, re.I), huge_text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("form.composer").screenshot(path=str(ARTIFACTS / "files-chips-failed.png"))

    page.get_by_label("Message").fill("Anything in these?")
    with page.expect_request(lambda r: r.url.endswith("/chat") and r.method == "POST") as posted:
        page.get_by_role("button", name="Send").click()
    assert len(sent_body(posted.value)["files"]) == 1  # the failed ones stay behind
    question = conversation(page).get_by_role("article").first
    expect(question.get_by_role("link")).to_have_count(1)
    expect(question.get_by_role("link")).to_have_accessible_name("ok.md")
    wait_answered(page, 2)
    expect(page.get_by_role("list", name="Attached files")).to_have_count(0)


def test_send_waits_for_a_file_still_being_read_and_remove_only_detaches(page: Any) -> None:
    """The server's answers for a slow document are played by the page's network (a real one is read
    too fast to watch): 202 processing, then progress, then ready."""
    file_id = "0f0e0d0c-0b0a-4909-8807-060504030201"
    record = {
        "id": file_id,
        "filename": "slow.pdf",
        "content_type": "application/pdf",
        "size": 2048,
        "sha256": "0" * 64,
        "status": "processing",
        "progress": 0.5,
        "error": None,
        "pages": None,
        "chars": None,
        "created_at": "2026-01-01T00:00:00Z",
    }
    state: dict[str, Any] = {"ready": False, "deleted": False, "polls": 0, "upload_headers": {}}

    def files(route: Any) -> None:
        request = route.request
        if request.method == "POST":
            state["upload_headers"] = request.headers
            route.fulfill(status=202, json=record)
        elif request.method == "DELETE":
            state["deleted"] = True
            route.fulfill(status=204)
        else:
            state["polls"] += 1
            done = {**record, "status": "ready", "progress": 1.0, "pages": 3, "chars": 900}
            route.fulfill(json=done if state["ready"] else record)

    page.route(re.compile(r".*/files(/[^/]*)?$"), files)
    sign_in(page)
    attach(page, text_file("slow.pdf", b"%PDF-1.4 stand-in", "application/pdf"))
    slow = chip(page, "slow.pdf")
    expect(slow).to_contain_text("Reading… 50%")
    expect(slow.get_by_role("progressbar")).to_be_visible()
    assert state["upload_headers"].get("x-requested-with")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("form.composer").screenshot(path=str(ARTIFACTS / "files-chip-reading.png"))
    page.get_by_label("Message").fill("Summarise it")
    send = page.get_by_role("button", name="Send")
    expect(send).to_be_disabled()
    page.get_by_label("Message").press("Enter")  # Enter does not send it either
    expect(conversation(page).get_by_role("article")).to_have_count(0)
    polls = state["polls"]
    page.wait_for_function("() => true", polling=100)  # a moment: it is read again, still processing
    expect(slow).to_contain_text("Reading… 50%")
    state["ready"] = True
    expect(slow).to_have_class(re.compile(r"\bready\b"))
    expect(slow).to_contain_text("3 pages")
    expect(send).to_be_enabled()
    assert state["polls"] > polls

    slow.get_by_role("button", name="Remove slow.pdf").click()
    expect(chips(page)).to_have_count(0)
    expect(page.get_by_label("Message")).to_be_focused()
    assert not state["deleted"]  # removing only detaches


PASTE_AND_DROP = """([event, name, data, selector]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type: "image/png" }));
  const target = document.querySelector(selector);
  if (event === "paste") {
    const paste = new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true, cancelable: true });
    target.dispatchEvent(paste);
    return paste.defaultPrevented;
  }
  let drop;
  for (const type of ["dragenter", "dragover", "drop"]) {
    drop = new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true });
    target.dispatchEvent(drop);
  }
  return drop.defaultPrevented;
}"""


def test_paste_and_drop_attach_images(page: Any) -> None:
    sign_in(page)
    for event, name, target in (
        ("paste", "pasted.png", "#message"),
        ("drop", "dropped.png", "form.composer"),
    ):
        data = base64.b64encode(png((6, 6))).decode()
        assert page.evaluate(PASTE_AND_DROP, [event, name, data, target])
        expect(chip(page, name)).to_have_class(re.compile(r"\bready\b"))
    expect(page.get_by_label("Message")).to_have_value("")  # a pasted file is not text
    expect(page.locator(".drop-hint")).to_have_count(0)
    # dropped beside the box, a file is neither attached nor opened by the browser in place of the page
    data = base64.b64encode(png((6, 6))).decode()
    assert page.evaluate(PASTE_AND_DROP, ["drop", "stray.png", data, ".log"])
    expect(chips(page)).to_have_count(2)


def test_attachments_look_right_on_a_desktop_and_a_phone_light_and_dark(
    browser: Any, server: LiveServer
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    for scheme in ("light", "dark"):
        context = browser.new_context(
            base_url=server.base_url, viewport={"width": 1280, "height": 800}, color_scheme=scheme
        )
        context.set_default_timeout(20_000)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto("/")
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_label("Message").wait_for()
        page.get_by_label("Model").select_option(ECHO_MODEL)
        long_name = "quarterly-results-of-the-northern-region-with-a-very-long-file-name.csv"
        attach(
            page,
            text_file(long_name, b"region,q1,q2\nnorth,10,12\n", "text/csv"),
            text_file("diagram.png", png((30, 20)), "image/png"),
        )
        expect(chip(page, "diagram.png")).to_have_class(re.compile(r"\bready\b"))
        expect(chip(page, long_name)).to_have_class(re.compile(r"\bready\b"))
        page.get_by_label("Message").fill(f"Compare the regions ({scheme})")
        page.get_by_role("button", name="Send").click()
        wait_answered(page, 2)
        attach(
            page,
            text_file("notes.txt", f"Some notes for {scheme}.\n".encode()),
            text_file("scan.pdf", b"not a pdf", "application/pdf"),
        )
        expect(chip(page, "scan.pdf")).to_have_class(re.compile(r"\bfailed\b"))
        expect(chip(page, "notes.txt")).to_have_class(re.compile(r"\bready\b"))
        if scheme == "light":
            axe = Axe().run(page)
            serious = [v["id"] for v in axe.response["violations"] if v["impact"] in ("serious", "critical")]
            assert serious == [], serious
        page.screenshot(path=str(ARTIFACTS / f"files-desktop-{scheme}.png"))
        page.set_viewport_size({"width": 375, "height": 740})
        page.wait_for_function("() => document.documentElement.scrollWidth <= 375")
        page.screenshot(path=str(ARTIFACTS / f"files-phone-{scheme}.png"))
        conversation(page).evaluate("log => { log.scrollTop = 0; }")  # the message with its files
        page.screenshot(path=str(ARTIFACTS / f"files-phone-{scheme}-sent.png"))
        context.close()
    assert errors == []
