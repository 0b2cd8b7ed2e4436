// Rendered Markdown: sanitised HTML, put in place by hand (Preact leaves the element's inside alone).
//
// With `observe`, the Markdown is parsed only once the element comes near the visible part of the
// conversation (plain text until then), so a long chat opens at once.

import { useLayoutEffect, useRef } from "preact/hooks";
import { copyCodeOnClick, showMarkdown } from "../markdown.js";

export function Markdown({ text, observe }) {
  const element = useRef(null);
  useLayoutEffect(() => {
    const target = element.current;
    if (!observe) {
      showMarkdown(target, text);
      return undefined;
    }
    target.textContent = text;
    return observe(target, () => showMarkdown(target, text));
  }, [text, observe]);
  return <div class="markdown" ref={element} onClick={copyCodeOnClick} />;
}

/** An `observe(element, show)` that calls `show` once the element nears the visible part of `root`. */
export function lazyObserver(rootRef) {
  let observer = null;
  const waiting = new Map();
  return (target, show) => {
    observer ||= new IntersectionObserver(
      (entries) => {
        for (const entry of entries) {
          if (!entry.isIntersecting) continue;
          observer.unobserve(entry.target);
          const callback = waiting.get(entry.target);
          waiting.delete(entry.target);
          callback?.();
        }
      },
      { root: rootRef.current, rootMargin: "800px 0px" },
    );
    waiting.set(target, show);
    observer.observe(target);
    return () => {
      waiting.delete(target);
      observer.unobserve(target);
    };
  };
}
