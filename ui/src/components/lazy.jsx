// A component loaded on first use (its code, and what it imports, in a chunk of its own).

import { useEffect, useState } from "preact/hooks";

export function Lazy({ load, props }) {
  const [Loaded, setLoaded] = useState(null);
  const [failure, setFailure] = useState("");
  useEffect(() => {
    load().then(
      (component) => setLoaded(() => component),
      (error) => setFailure(error.message),
    );
  }, [load]);
  // the placeholder had the focus (a new page takes it): the loaded page takes it over
  useEffect(() => {
    if (Loaded && document.activeElement === document.body) document.getElementById("main")?.focus();
  }, [Loaded]);
  if (failure) return <main id="main" tabIndex={-1} class="page"><p role="alert">This page failed to load: {failure}</p></main>;
  if (!Loaded) return <main id="main" tabIndex={-1} class="page" aria-busy="true">Loading…</main>;
  return <Loaded {...props} />;
}
