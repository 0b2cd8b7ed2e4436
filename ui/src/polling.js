// Reading the server again and again while a page is open.

import { useEffect, useRef } from "preact/hooks";

/** Calls `tick` now and every `ms` while the page is visible; stops when `tick` answers false. A new
 * `key` starts over (calls `tick` at once). */
export function usePolling(tick, ms, key) {
  const latest = useRef(tick);
  latest.current = tick;
  useEffect(() => {
    let timer = 0;
    let stopped = false;
    const run = async () => {
      if (document.visibilityState === "visible" && (await latest.current()) === false) stopped = true;
      if (!stopped) timer = setTimeout(run, ms);
    };
    run();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [ms, key]);
}
