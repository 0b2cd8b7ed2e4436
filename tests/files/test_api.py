"""``/files`` and ``/chat`` with files, through the app on SQLite and PostgreSQL.

Documents are real (a generated PDF and DOCX); the model is a fake OpenAI-compatible server on
127.0.0.1 that records what it received, so the tests see what reached the model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from ailab.config import Settings
from ailab.db.repos import files as files_repo
from ailab.db.repos.files import FileRow
from ailab.db.tables import utcnow
from ailab.ids import time_ordered_id
from ailab.services.container import Services
from tests.conftest import AppClientFactory
from tests.fakes.openai_server import FakeOpenAI
from tests.support.documents import docx_bytes, pdf_bytes, png_bytes, repeated_pdf, zip_bomb_docx
from tests.support.provider_settings import configure

PAGES = [
    "Introduction. This contract is between Acme and Globex.",
    "Payment terms. The invoice is due within 45 days of delivery, in euros.",
    "Termination. Either party may end the agreement with 90 days notice.",
]
ECHO = "openai-compat/echo"


@pytest.fixture
async def client(
    make_settings: Callable[..., Settings],
    any_database_url: str,
    upstream: FakeOpenAI,
    app_client: AppClientFactory,
) -> AsyncIterator[httpx.AsyncClient]:
    """The app on a fresh database (both kinds), as admin, with an echoing OpenAI-compatible model."""
    settings = configure(
        make_settings(database_url=any_database_url), openai_compat_base_url=upstream.base_url
    )
    async with app_client(settings) as c:
        yield c


def services_of(client: httpx.AsyncClient) -> Services:
    return client.services  # type: ignore[attr-defined, no-any-return]


def uploads_dir(client: httpx.AsyncClient) -> Path:
    return services_of(client).files.blobs.root


def stored_bytes(client: httpx.AsyncClient) -> list[str]:
    """Names of the stored uploads and of incoming leftovers (none after a refusal)."""
    root = uploads_dir(client)
    return sorted(p.name for p in root.iterdir() if p.is_file()) + sorted(
        p.name for p in (root / ".incoming").iterdir()
    )


async def upload(
    client: httpx.AsyncClient, name: str, data: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post("/files", files={"file": (name, data)}, headers=headers)


async def test_a_pdf_is_stored_read_by_page_searched_and_deleted(client: httpx.AsyncClient) -> None:
    data = pdf_bytes(PAGES)
    response = await upload(client, "contract.pdf", data)
    assert response.status_code == 201, response.text
    file = response.json()
    assert file["filename"] == "contract.pdf"
    assert file["content_type"] == "application/pdf"
    assert (file["size"], file["status"], file["pages"]) == (len(data), "ready", 3)

    listed = (await client.get("/files")).json()
    assert [f["id"] for f in listed["items"]] == [file["id"]]
    assert (await client.get(f"/files/{file['id']}")).json()["progress"] == 1.0
    content = await client.get(f"/files/{file['id']}/content")
    assert content.content == data
    assert content.headers["content-type"] == "application/pdf"
    assert content.headers["content-disposition"].startswith("attachment")

    hits = (await client.get("/files/search", params={"q": "when is the invoice due"})).json()["items"]
    assert hits[0]["file_id"] == file["id"]
    assert hits[0]["page"] == 2
    assert "45 days" in hits[0]["text"]
    assert hits[0]["filename"] == "contract.pdf"

    again = await upload(client, "renamed.pdf", data)  # the same bytes: the same file
    assert again.status_code == 200
    assert again.json()["id"] == file["id"]
    assert len(stored_bytes(client)) == 1

    assert (await client.delete(f"/files/{file['id']}")).status_code == 204
    assert (await client.get(f"/files/{file['id']}")).status_code == 404
    assert (await client.get(f"/files/{file['id']}/content")).status_code == 404
    assert (await client.get("/files/search", params={"q": "invoice"})).json()["items"] == []
    assert stored_bytes(client) == []


async def test_a_docx_with_a_table_is_searchable(client: httpx.AsyncClient) -> None:
    data = docx_bytes(["Quarterly report", "Revenue grew in the northern region."], [["city", "Reykjavik"]])
    file = (await upload(client, "report.docx", data)).json()
    assert file["status"] == "ready", file
    assert file["content_type"].endswith("wordprocessingml.document")
    hits = (await client.get("/files/search", params={"q": "Reykjavik"})).json()["items"]
    assert [h["file_id"] for h in hits] == [file["id"]]
    assert hits[0]["page"] is None


@pytest.mark.parametrize(
    ("name", "data", "status", "words"),
    [
        ("picture.pdf", png_bytes(), 415, "PNG"),
        ("tool.exe", b"MZ\x90\x00\x03" + bytes(200), 415, ""),
        ("broken.pdf", pdf_bytes(PAGES)[:400], 422, "PDF"),
        ("bomb.docx", zip_bomb_docx(300 * 1024 * 1024), 422, "inflate"),
        ("empty.txt", b"", 422, "empty"),
        ("broken.png", png_bytes()[:60], 422, "image"),
    ],
    ids=["lying-name", "executable", "truncated-pdf", "zip-bomb", "empty", "corrupt-image"],
)
async def test_a_refused_upload_leaves_nothing_behind(
    client: httpx.AsyncClient, name: str, data: bytes, status: int, words: str
) -> None:
    response = await upload(client, name, data)
    assert response.status_code == status, response.text
    assert words.lower() in response.json()["detail"].lower()
    assert (await client.get("/files")).json()["items"] == []
    assert stored_bytes(client) == []
    assert (await client.get("/health/live")).status_code == 200


async def test_an_upload_past_the_limit_is_413_and_not_kept(
    make_settings: Callable[..., Settings], database_url: str, app_client: AppClientFactory
) -> None:
    settings = make_settings(database_url=database_url, max_upload_bytes=4096)
    async with app_client(settings) as client:
        small = await upload(client, "small.txt", b"fits\n" * 100)
        assert small.status_code == 201
        # Chunked (no Content-Length), so only the streaming count can catch it.
        body = (b"x" * 1000 + b"\n" for _ in range(10))
        boundary = "b0undary"

        async def multipart() -> AsyncIterator[bytes]:
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n\r\n'
            ).encode()
            for piece in body:
                yield piece
            yield f"\r\n--{boundary}--\r\n".encode()

        response = await client.post(
            "/files",
            content=multipart(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert response.status_code == 413, response.text
        assert response.json()["detail"] == (
            "the file is larger than 4 KiB, this server's limit (AILAB_MAX_UPLOAD_BYTES)"
        )
        assert [f["filename"] for f in (await client.get("/files")).json()["items"]] == ["small.txt"]
        assert len(stored_bytes(client)) == 1


async def test_bad_upload_requests_are_refused_clearly(client: httpx.AsyncClient) -> None:
    as_json = await client.post("/files", json={"file": "not a file"})
    assert as_json.status_code == 415
    no_field = await client.post("/files", files={"other": ("a.txt", b"hello")})
    assert no_field.status_code == 422
    assert "'file'" in no_field.json()["detail"]
    no_words = await client.get("/files/search", params={"q": "!!!"})
    assert (no_words.status_code, no_words.json()["items"]) == (200, [])
    assert (await client.get("/files/not-an-id")).status_code == 422


async def test_another_users_files_do_not_exist_for_them(client: httpx.AsyncClient) -> None:
    services = services_of(client)
    mine = (await upload(client, "contract.pdf", pdf_bytes(PAGES))).json()
    await services.auth.create_user("mallory", "mallory-password")
    mallory = {"Authorization": f"Bearer {await services.auth.login('mallory', 'mallory-password')}"}
    for method, path in [
        ("GET", f"/files/{mine['id']}"),
        ("GET", f"/files/{mine['id']}/content"),
        ("DELETE", f"/files/{mine['id']}"),
    ]:
        assert (await client.request(method, path, headers=mallory)).status_code == 404
    assert (await client.get("/files", headers=mallory)).json()["items"] == []
    search = await client.get("/files/search", params={"q": "invoice"}, headers=mallory)
    assert search.json()["items"] == []
    chat = await client.post(
        "/chat",
        json={"message": "what does it say?", "model": ECHO, "pipeline": "direct", "files": [mine["id"]]},
        headers=mallory,
    )
    assert chat.status_code == 404
    assert (await client.get("/sessions", headers=mallory)).json()["items"] == []
    # Their own copy of the same bytes is a file of their own.
    theirs = await upload(client, "contract.pdf", pdf_bytes(PAGES), headers=mallory)
    assert theirs.status_code == 201
    assert theirs.json()["id"] != mine["id"]
    assert (await client.get(f"/files/{mine['id']}")).status_code == 200


async def test_deleting_a_user_deletes_their_files(client: httpx.AsyncClient) -> None:
    services = services_of(client)
    await services.auth.create_user("leaver", "leaver-password")
    leaver = {"Authorization": f"Bearer {await services.auth.login('leaver', 'leaver-password')}"}
    kept = (await upload(client, "admin.txt", b"the admin's notes")).json()
    gone = (await upload(client, "notes.txt", b"the leaver's notes", headers=leaver)).json()
    assert (await client.delete("/users/leaver")).status_code == 204
    assert sorted(stored_bytes(client)) == [kept["id"]]
    assert (await client.get(f"/files/{gone['id']}")).status_code == 404


def last_user_message(upstream: FakeOpenAI) -> Any:
    return upstream.requests[-1].json["messages"][-1]


async def test_chat_with_a_document_gives_the_model_its_pages_and_names_them(
    client: httpx.AsyncClient, upstream: FakeOpenAI
) -> None:
    file = (await upload(client, "contract.pdf", pdf_bytes(PAGES))).json()
    response = await client.post(
        "/chat",
        json={
            "message": "When is the invoice due?",
            "model": ECHO,
            "pipeline": "direct",
            "files": [file["id"]],
        },
    )
    assert response.status_code == 200, response.text
    sent = last_user_message(upstream)["content"]
    assert "contract.pdf, page 2" in sent
    assert "45 days" in sent
    assert sent.endswith("When is the invoice due?")
    reply = response.json()
    assert "contract.pdf (pages 1, 2, 3)" in reply["thought_process"]

    history = (await client.get(f"/sessions/{reply['session_id']}/messages")).json()["items"]
    assert history[0]["content"] == "When is the invoice due?"  # stored as typed, without the context
    assert history[0]["files"] == [
        {"id": file["id"], "filename": "contract.pdf", "content_type": "application/pdf"}
    ]
    assert history[1]["files"] is None

    # A follow-up in the same session: the conversation's files are still its subject.
    follow_up = await client.post(
        "/chat",
        json={
            "message": "And the termination notice?",
            "model": ECHO,
            "pipeline": "direct",
            "session_id": reply["session_id"],
        },
    )
    assert follow_up.status_code == 200, follow_up.text
    sent = last_user_message(upstream)["content"]
    assert "90 days notice" in sent and sent.endswith("And the termination notice?")
    assert "Files used: contract.pdf" in follow_up.json()["thought_process"]
    # Deleted since: the follow-up goes on without it.
    assert (await client.delete(f"/files/{file['id']}")).status_code == 204
    after = await client.post(
        "/chat",
        json={
            "message": "Anything else?",
            "model": ECHO,
            "pipeline": "direct",
            "session_id": reply["session_id"],
        },
    )
    assert after.status_code == 200, after.text
    assert last_user_message(upstream)["content"] == "Anything else?"
    assert after.json()["thought_process"] is None


async def test_a_long_document_gives_the_model_the_matching_chunks(
    client: httpx.AsyncClient, upstream: FakeOpenAI
) -> None:
    filler = [f"Paragraph {n} is about routine maintenance of the west wing boilers." for n in range(1200)]
    filler[700] = "The vault combination is kept by the night porter, Mr Okonkwo."
    text = "\n\n".join(filler).encode()
    file = (await upload(client, "manual.md", text)).json()
    assert file["content_type"] == "text/markdown"
    response = await client.post(
        "/chat",
        json={
            "message": "Who keeps the vault combination?",
            "model": ECHO,
            "pipeline": "direct",
            "files": [file["id"]],
        },
    )
    assert response.status_code == 200, response.text
    sent = last_user_message(upstream)["content"]
    assert "Okonkwo" in sent
    assert len(sent) < len(text) / 2  # trimmed to the window, not the whole document


async def test_chat_with_an_image_sends_it_to_a_model_that_can_see(
    client: httpx.AsyncClient, upstream: FakeOpenAI
) -> None:
    image = (await upload(client, "chart.png", png_bytes(80, 40))).json()
    assert (image["status"], image["content_type"]) == ("ready", "image/png")
    response = await client.post(
        "/chat",
        json={"message": "What colour is it?", "model": ECHO, "pipeline": "direct", "files": [image["id"]]},
    )
    assert response.status_code == 200, response.text
    assert upstream.images, "the upstream received no image"
    received = upstream.images[-1]
    assert received.media_type == "image/png"
    assert received.data.startswith(b"\x89PNG")


async def test_an_image_for_a_model_that_cannot_see_is_422_naming_it(client: httpx.AsyncClient) -> None:
    image = (await upload(client, "chart.png", png_bytes())).json()
    response = await client.post(
        "/chat", json={"message": "What is this?", "pipeline": "direct", "files": [image["id"]]}
    )
    assert response.status_code == 422, response.text
    assert "local/" in response.json()["detail"]
    assert (await client.get("/sessions")).json()["items"] == []


async def test_a_document_still_being_read_answers_202_then_becomes_ready(
    make_settings: Callable[..., Settings],
    database_url: str,
    upstream: FakeOpenAI,
    app_client: AppClientFactory,
) -> None:
    settings = configure(
        make_settings(database_url=database_url, upload_wait_seconds=0),
        openai_compat_base_url=upstream.base_url,
    )
    async with app_client(settings) as client:
        response = await upload(client, "contract.pdf", pdf_bytes(PAGES))
        assert response.status_code == 202
        file = response.json()
        assert file["status"] == "processing"
        early = await client.post(
            "/chat", json={"message": "hi", "model": ECHO, "pipeline": "direct", "files": [file["id"]]}
        )
        if early.status_code != 200:  # the worker may have finished already on a fast machine
            assert early.status_code == 409
            assert "still being read" in early.json()["detail"]
        await services_of(client).files.wait_read(file["id"])
        ready = (await client.get(f"/files/{file['id']}")).json()
        assert (ready["status"], ready["pages"]) == ("ready", 3)


async def test_a_signed_in_browser_uploads_with_x_requested_with_only(
    make_settings: Callable[..., Settings], database_url: str, app_client: AppClientFactory
) -> None:
    from tests.support.server import ADMIN_PASSWORD

    async with app_client(make_settings(database_url=database_url), login=False) as client:
        signed_in = await client.post("/auth/session", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert signed_in.status_code in (200, 204), signed_in.text
        forged = await upload(client, "a.txt", b"from another site")
        assert forged.status_code == 403
        own = await upload(client, "a.txt", b"from the UI", headers={"X-Requested-With": "fetch"})
        assert own.status_code == 201, own.text


async def test_a_document_whose_reading_a_restart_interrupted_is_read_at_the_next_start(
    make_settings: Callable[..., Settings], database_url: str, app_client: AppClientFactory
) -> None:
    settings = make_settings(database_url=database_url)
    async with app_client(settings) as client:
        services = services_of(client)
        owner = (await services.auth.local_admin()).id
        # As a process killed mid-read leaves it: the bytes stored, the row still "processing".
        interrupted = FileRow(
            id=time_ordered_id(),
            owner_id=owner,
            filename="contract.pdf",
            content_type="application/pdf",
            size=0,
            sha256="0" * 64,
            status="processing",
            progress=0.3,
            error=None,
            pages=None,
            chars=None,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        services.files.blobs.path(interrupted.id).write_bytes(pdf_bytes(PAGES))
        lost = replace(interrupted, id=time_ordered_id(), sha256="1" * 64, filename="lost.pdf")
        await services.db.run_write(files_repo.insert_file, interrupted)
        await services.db.run_write(files_repo.insert_file, lost)  # its bytes never reached the disk
    async with app_client(settings) as client:
        await services_of(client).files.wait_read(interrupted.id)
        ready = (await client.get(f"/files/{interrupted.id}")).json()
        assert (ready["status"], ready["pages"]) == ("ready", 3)
        failed = (await client.get(f"/files/{lost.id}")).json()
        assert failed["status"] == "failed"
        assert "restart" in failed["error"]


def embedding_requests(upstream: FakeOpenAI) -> list[Any]:
    return [r.json for r in upstream.requests if r.path.endswith("/embeddings")]


async def test_with_an_embedding_model_chunks_get_vectors_and_retrieval_blends_them(
    make_settings: Callable[..., Settings],
    any_database_url: str,
    upstream: FakeOpenAI,
    app_client: AppClientFactory,
) -> None:
    settings = configure(
        make_settings(database_url=any_database_url, files_embedding_model="openai-compat/embed-small"),
        openai_compat_base_url=upstream.base_url,
    )
    async with app_client(settings) as client:
        file = (await upload(client, "contract.pdf", pdf_bytes(PAGES))).json()
        await services_of(client).files.wait_read(file["id"])
        embedded = embedding_requests(upstream)
        assert [request["input"] for request in embedded] == [PAGES]
        vectors = await services_of(client).db.run_read(
            files_repo.file_embeddings, [file["id"]], "openai-compat/embed-small"
        )
        assert sorted(idx for _f, idx, _v in vectors) == [0, 1, 2]

        hits = (await client.get("/files/search", params={"q": "invoice payment terms"})).json()["items"]
        assert hits[0]["page"] == 2
        assert embedding_requests(upstream)[-1]["input"] == ["invoice payment terms"]  # the question's vector

        upstream.fail_status = 500  # the embedding model is down: full-text search alone, no error
        hits = (await client.get("/files/search", params={"q": "termination notice"})).json()["items"]
        assert hits[0]["page"] == 3
        upstream.fail_status = None
        second = (await upload(client, "notes.txt", b"The notice period is ninety days.")).json()
        assert second["status"] == "ready"


async def test_a_pdf_that_takes_too_long_to_read_is_refused_and_the_server_goes_on(
    make_settings: Callable[..., Settings], database_url: str, app_client: AppClientFactory
) -> None:
    settings = make_settings(database_url=database_url, extract_timeout_seconds=0.05)
    endless = repeated_pdf("lorem ipsum dolor sit amet " * 40, pages=1500)  # seconds to read, not 0.05
    async with app_client(settings) as client:
        response = await upload(client, "endless.pdf", endless)
        assert response.status_code == 422, response.text
        assert response.json()["detail"] == "the document took longer than 0.05 s to read"
        assert stored_bytes(client) == []
        assert (await client.get("/files")).json()["items"] == []
        assert (await upload(client, "next.txt", b"still reading files")).status_code == 201


async def test_deleting_a_session_keeps_its_files(client: httpx.AsyncClient) -> None:
    file = (await upload(client, "notes.txt", b"The porter keeps the keys.")).json()
    reply = await client.post(
        "/chat",
        json={"message": "Who keeps the keys?", "model": ECHO, "pipeline": "direct", "files": [file["id"]]},
    )
    assert (await client.delete(f"/sessions/{reply.json()['session_id']}")).status_code in (200, 204)
    assert (await client.get(f"/files/{file['id']}")).json()["status"] == "ready"
    assert (await client.get(f"/files/{file['id']}/content")).content == b"The porter keeps the keys."
