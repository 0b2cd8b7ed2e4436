// The sessions sidebar: new chat, search by title, the list (rename, delete), more pages, import.

import { useEffect, useRef, useState } from "preact/hooks";
import { navigate } from "../router.js";

const SEARCH_DELAY_MS = 250; // one request when typing pauses, not one per key

export function SessionList({ sessions, currentId, open, onClose, onError }) {
  const [query, setQuery] = useState(sessions.query);
  const searching = query.trim() !== "";
  const shown = sessions.items;

  useEffect(() => {
    const timer = setTimeout(() => sessions.search(query), SEARCH_DELAY_MS);
    return () => clearTimeout(timer);
  }, [query]);

  const importFile = async (event) => {
    const input = event.currentTarget;
    const file = input.files[0];
    input.value = "";
    if (!file) return;
    try {
      const document = JSON.parse(await file.text());
      const session = await sessions.importDocument(document);
      navigate("chat", session.id);
      onClose();
    } catch (failure) {
      onError(`Import failed: ${failure instanceof SyntaxError ? "the file is not JSON" : failure.message}`);
    }
  };

  return (
    <nav id="sessions" aria-label="Sessions" class={open ? "sessions open" : "sessions"}>
      <button
        type="button"
        class="primary"
        onClick={() => {
          navigate("chat");
          onClose();
          document.getElementById("message")?.focus();
        }}
      >
        New chat
      </button>
      <input
        type="search"
        aria-label="Search chats"
        placeholder="Search chats"
        value={query}
        onInput={(event) => setQuery(event.currentTarget.value)}
      />
      {sessions.error && <p role="alert" class="error">{sessions.error}</p>}
      <ul class="session-list">
        {shown.map((session) => (
          <SessionItem
            key={session.id}
            session={session}
            current={session.id === currentId}
            sessions={sessions}
            onOpen={onClose}
            onError={onError}
          />
        ))}
      </ul>
      {!sessions.loading && !shown.length && (
        <p class="muted">{searching ? "No chat title matches." : "No chats yet."}</p>
      )}
      {sessions.nextCursor && (
        <button type="button" onClick={sessions.loadMore}>Load more</button>
      )}
      <label class="button file">
        Import chat
        <input type="file" accept=".json,application/json" onChange={importFile} />
      </label>
    </nav>
  );
}

function SessionItem({ session, current, sessions, onOpen, onError }) {
  const [mode, setMode] = useState("view"); // "view", "rename" or "delete"
  const [title, setTitle] = useState(session.title);
  const focus = useRef(null);
  const opener = useRef(null);

  useEffect(() => {
    focus.current?.focus();
  }, [mode]);

  const close = () => {
    setMode("view");
    requestAnimationFrame(() => opener.current?.focus());
  };

  const rename = async (event) => {
    event.preventDefault();
    const value = title.trim();
    if (!value || value === session.title) return close();
    try {
      await sessions.rename(session.id, value);
      close();
    } catch (failure) {
      onError(`Rename failed: ${failure.message}`);
    }
  };

  const remove = async () => {
    try {
      await sessions.remove(session.id);
      if (current) navigate("chat", null, { replace: true });
    } catch (failure) {
      onError(`Delete failed: ${failure.message}`);
      close();
    }
  };

  const name = session.title || "Untitled";
  const linkId = `session-${session.id}`;
  if (mode === "rename") {
    return (
      <li class="session editing">
        <form onSubmit={rename} onKeyDown={(event) => event.key === "Escape" && close()}>
          <input
            ref={focus}
            aria-label="New title"
            value={title}
            maxLength={256}
            onInput={(event) => setTitle(event.currentTarget.value)}
          />
          <button type="submit">Save</button>
          <button type="button" onClick={close}>Cancel</button>
        </form>
      </li>
    );
  }
  if (mode === "delete") {
    return (
      <li class="session confirming" onKeyDown={(event) => event.key === "Escape" && close()}>
        <span>Delete “{name}”?</span>
        <button type="button" class="danger" ref={focus} onClick={remove}>Yes, delete</button>
        <button type="button" onClick={close}>Cancel</button>
      </li>
    );
  }
  return (
    <li class={current ? "session current" : "session"}>
      <a id={linkId} href={`#/chat/${encodeURIComponent(session.id)}`} aria-current={current ? "page" : undefined} onClick={onOpen}>
        {name}
      </a>
      <span class="session-actions">
        <button
          type="button"
          class="small"
          aria-describedby={linkId}
          ref={opener}
          onClick={() => {
            setTitle(session.title);
            setMode("rename");
          }}
        >
          Rename
        </button>
        <button type="button" class="small" aria-describedby={linkId} onClick={() => setMode("delete")}>
          Delete
        </button>
      </span>
    </li>
  );
}
