// The signed-in user's sessions, newest first, a page at a time; with a search, those whose title
// contains it (the server searches every session, not only the pages shown).

import { useEffect, useRef, useState } from "preact/hooks";
import { api, withQuery } from "../api.js";

const PAGE_SIZE = 50;

export function useSessions() {
  const [items, setItems] = useState([]);
  const [nextCursor, setNextCursor] = useState(null);
  const [error, setError] = useState("");
  const [loading, setLoading] = useState(true);
  const [query, setQuery] = useState("");
  const morePages = useRef(false); // whether pages after the first are shown
  const latest = useRef({ query: "", asked: 0 }); // the search the list shows, and the newest request

  /** Reads the first page again, keeping the later pages already shown (of the same search). */
  const reload = async () => {
    const asked = ++latest.current.asked;
    const q = latest.current.query;
    try {
      const page = await api.get(withQuery("/sessions", { limit: PAGE_SIZE, q }));
      if (asked !== latest.current.asked) return; // a newer search answered or will answer
      if (morePages.current) {
        const fresh = new Set(page.items.map((session) => session.id));
        setItems((current) => [...page.items, ...current.filter((session) => !fresh.has(session.id))]);
      } else {
        setItems(page.items);
        setNextCursor(page.next_cursor);
      }
      setError("");
    } catch (failure) {
      if (asked === latest.current.asked) setError(failure.message);
    } finally {
      if (asked === latest.current.asked) setLoading(false);
    }
  };

  const loadMore = async () => {
    if (!nextCursor) return;
    morePages.current = true;
    try {
      const q = latest.current.query;
      const page = await api.get(withQuery("/sessions", { limit: PAGE_SIZE, cursor: nextCursor, q }));
      if (q !== latest.current.query) return;
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

  /** Shows the sessions whose title contains `text` (all of them when it is blank). */
  const search = (text) => {
    const q = text.trim();
    setQuery(text);
    if (q === latest.current.query) return;
    latest.current.query = q;
    morePages.current = false;
    setLoading(true);
    reload();
  };

  useEffect(() => {
    reload();
  }, []);

  return { items, nextCursor, error, loading, query, reload, loadMore, search, rename, remove, importDocument };
}
