// Markdown to safe HTML: marked renders, highlight.js colours code, DOMPurify sanitises every result.
//
// Nothing a model writes may run in the page: DOMPurify keeps only plain HTML (no script, no event
// handler, no javascript: URL, no iframe, no SVG or MathML, no srcdoc, no style), every link opens
// in a new tab without access to this one, and images only show from data: URLs (the page's
// Content-Security-Policy would refuse any other source anyway).

import { Marked } from "marked";
import DOMPurify from "dompurify";
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import c from "highlight.js/lib/languages/c";
import cpp from "highlight.js/lib/languages/cpp";
import css from "highlight.js/lib/languages/css";
import go from "highlight.js/lib/languages/go";
import java from "highlight.js/lib/languages/java";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";

const languages = { bash, c, cpp, css, go, java, javascript, json, python, rust, sql, typescript, xml };
for (const [name, language] of Object.entries(languages)) hljs.registerLanguage(name, language);

const escapes = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const escape = (text) => text.replace(/[&<>"']/g, (char) => escapes[char]);

const HANDLER_OR_STYLE = /[\s/](?:on[a-z]+|style)\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]*)/gi;

const marked = new Marked({
  gfm: true,
  breaks: true,
  renderer: {
    code({ text, lang }) {
      const name = (lang || "").trim().split(/\s+/)[0].toLowerCase();
      const known = name && hljs.getLanguage(name);
      const body = known ? hljs.highlight(text, { language: name, ignoreIllegals: true }).value : escape(text);
      const label = known ? ` language-${escape(name)}` : "";
      return `<pre><code class="hljs${label}">${body}</code></pre>\n`;
    },
    // DOMPurify (below) is what keeps raw HTML harmless; this only spares the console the reports of
    // the Content-Security-Policy that the mere parsing of an event handler or a style writes, even in
    // the inert document DOMPurify parses into.
    html({ text }) {
      return text.replace(/<style[\s\S]*?(<\/style>|$)/gi, "").replace(HANDLER_OR_STYLE, " ");
    },
  },
});

const purifier = DOMPurify(window);
purifier.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
  if (node.tagName === "IMG" && !/^data:image\//i.test(node.getAttribute("src") || "")) {
    node.removeAttribute("src");
  }
});
const policy = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "option", "iframe", "frame", "object", "embed"],
  FORBID_ATTR: ["style", "srcdoc", "action", "formaction", "target"],
};

/** Safe HTML for a model's (or a user's) Markdown. */
export function renderMarkdown(text) {
  return purifier.sanitize(marked.parse(text || ""), policy);
}

/** Shows `text` as Markdown in `element`, each code block headed by its language and "Copy code". */
export function showMarkdown(element, text) {
  element.innerHTML = renderMarkdown(text);
  for (const block of element.querySelectorAll("pre")) {
    const wrapper = document.createElement("div");
    wrapper.className = "code-block";
    const head = document.createElement("div");
    head.className = "code-head";
    const language = document.createElement("span");
    language.textContent = /language-([\w-]+)/.exec(block.firstElementChild?.className || "")?.[1] || "";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy-code";
    button.textContent = "Copy code";
    head.append(language, button);
    block.replaceWith(wrapper);
    wrapper.append(head, block);
  }
}

/** Handles a click on a "Copy code" button inside rendered Markdown; answers whether it was one. */
export function copyCodeOnClick(event) {
  const button = event.target.closest?.("button.copy-code");
  if (!button) return false;
  const code = button.closest(".code-block")?.querySelector("pre")?.textContent ?? "";
  copyText(code).then(
    () => flash(button, "Copied"),
    () => flash(button, "Copy failed"),
  );
  return true;
}

function flash(button, text) {
  button.textContent = text;
  setTimeout(() => (button.textContent = "Copy code"), 1500);
}

/** Puts `text` on the clipboard (with a fallback where the Clipboard API is missing). */
export async function copyText(text) {
  if (navigator.clipboard?.writeText) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.append(area);
  area.select();
  const copied = document.execCommand("copy");
  area.remove();
  if (!copied) throw new Error("copy refused");
}
