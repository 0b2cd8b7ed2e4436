// Hash routing (`#/chat`, `#/chat/<session id>`, `#/keys`, ...): the server only ever serves `/`.

import { useEffect, useState } from "preact/hooks";

function parse() {
  const [page = "", id = null] = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  return { page: page || "chat", id: id || null };
}

/** The current route, `{page, id}`, updated when the hash changes. */
export function useRoute() {
  const [route, setRoute] = useState(parse);
  useEffect(() => {
    const update = () => setRoute(parse());
    addEventListener("hashchange", update);
    return () => removeEventListener("hashchange", update);
  }, []);
  return route;
}

/** Goes to `#/page[/id]`; `replace` leaves no entry in the history. */
export function navigate(page, id = null, { replace = false } = {}) {
  const hash = `#/${page}${id ? `/${encodeURIComponent(id)}` : ""}`;
  if (location.hash === hash) return;
  if (replace) {
    history.replaceState(null, "", hash);
    dispatchEvent(new HashChangeEvent("hashchange"));
  } else {
    location.hash = hash;
  }
}
