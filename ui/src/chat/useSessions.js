// The signed-in user's sessions, newest first, a page at a time.

import { useEffect, useRef, useState } from "preact/hooks";
import { api, withQuery } from "../api.js";

const PAGE_SIZE = 50;

export function useSessions() {
  const [items, setItems] = useState([]);
  const [nextCursor, setNextCursor] = useState(null);
  const [error, setError] = useState("");
  const [loading, setLoading] = useState(true);
  const morePages = useRef(false); // whether pages after the first are shown

  /** Reads the first page again, keeping the later pages already shown. */
  const reload = async () => {
    try {
      const page = await api.get(withQuery("/sessions", { limit: PAGE_SIZE }));
      if (morePages.current) {
        const fresh = new Set(page.items.map((session) => session.id));
        setItems((current) => [...page.items, ...current.filter((session) => !fresh.has(session.id))]);
      } else {
        setItems(page.items);
        setNextCursor(page.next_cursor);
      }
      setError("");
    } catch (failure) {
      setError(failure.message);
    } finally {
      setLoading(false);
    }
  };

  const loadMore = async () => {
    if (!nextCursor) return;
    morePages.current = true;
    try {
      const page = await api.get(withQuery("/sessions", { limit: PAGE_SIZE, cursor: nextCursor }));
      setItems((current) => {
        const known = new Set(current.map((session) => session.id));
        return [...current, ...page.items.filter((session) => !known.has(session.id))];
      });
      setNextCursor(page.next_cursor);
    } catch (failure) {
      setError(failure.message);
    }
  };

  const rename = async (id, title) => {
    const session = await api.patch(`/sessions/${encodeURIComponent(id)}`, { title });
    setItems((current) => current.map((item) => (item.id === id ? session : item)));
  };

  const remove = async (id) => {
    await api.del(`/sessions/${encodeURIComponent(id)}`);
    setItems((current) => current.filter((item) => item.id !== id));
  };

  const importDocument = async (document) => {
    const session = await api.post("/sessions/import", document);
    setItems((current) => [session, ...current.filter((item) => item.id !== session.id)]);
    return session;
  };

  useEffect(() => {
    reload();
  }, []);

  return { items, nextCursor, error, loading, reload, loadMore, rename, remove, importDocument };
}
