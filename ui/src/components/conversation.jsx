// The conversation: one article per message, and the answer that is growing, in a scrolling log.
//
// Stored messages render once (each only again when it changes) and parse their Markdown when
// they come into view; only the growing answer redraws while a run streams, once per frame.

import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { copyText } from "../markdown.js";
import { hasAgents, shownText, subscribe } from "../chat/run.js";
import { Markdown, lazyObserver } from "./markdown.jsx";
import { LiveTrace, ThoughtProcess, Trace } from "./trace.jsx";
import { memo } from "./memo.js";
import { duration, fileContent, fileKind, isImage, num } from "../format.js";

const roleName = (role) => (role ? role[0].toUpperCase() + role.slice(1) : "Message");
const keyOf = (message) => message.id ?? message.key;

function sameList(a, b) {
  if (a === b) return true;
  if (!a || !b || a.length !== b.length) return false;
  return a.every((item, index) => item === b[index]);
}

function Facts({ message }) {
  const facts = [
    message.model,
    message.completion_tokens != null && `${message.completion_tokens} tokens`,
    message.ttft_ms != null && `first token ${duration(message.ttft_ms)}`,
    message.tokens_per_second != null && `${num(message.tokens_per_second)} tokens/s`,
  ].filter(Boolean);
  return facts.length ? <span class="facts muted">{facts.join(" · ")}</span> : null;
}

/** The files a user message came with: each a link that downloads it. */
function Attachments({ files }) {
  return (
    <ul class="message-files" aria-label="Attachments">
      {files.map((file) => (
        <li key={file.id}>
          <a class="file-link" href={fileContent(file.id)} download={file.filename} title={`Download ${file.filename}`}>
            {isImage(file.content_type) ? (
              <img class="chip-thumb" src={fileContent(file.id)} alt="" loading="lazy" />
            ) : (
              <span class="chip-kind" aria-hidden="true">{fileKind(file.filename, file.content_type)}</span>
            )}
            <span class="file-name">{file.filename}</span>
          </a>
        </li>
      ))}
    </ul>
  );
}

const SOURCES = /(?:^|\n)Files used: ([^\n]*)$/;

/** An answer's thought process, less its last line naming the attached files used, and that line. */
function splitSources(text) {
  const match = text ? SOURCES.exec(text) : null;
  if (!match) return { thought: text, sources: "" };
  return { thought: text.slice(0, match.index).trim(), sources: match[1] };
}

function CopyButton({ text }) {
  const [label, setLabel] = useState("Copy");
  const copy = () =>
    copyText(text).then(
      () => setLabel("Copied"),
      () => setLabel("Copy failed"),
    );
  useEffect(() => {
    if (label === "Copy") return undefined;
    const timer = setTimeout(() => setLabel("Copy"), 1500);
    return () => clearTimeout(timer);
  }, [label]);
  return (
    <button type="button" class="small" onClick={copy} aria-live="polite">
      {label}
    </button>
  );
}

function EditBox({ text, onSend, onCancel }) {
  const [value, setValue] = useState(text);
  const area = useRef(null);
  useEffect(() => {
    area.current.focus();
    area.current.select();
  }, []);
  const submit = (event) => {
    event.preventDefault();
    if (value.trim()) onSend(value);
  };
  const keys = (event) => {
    if (event.key === "Escape") {
      event.stopPropagation();
      onCancel();
    } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      submit(event);
    }
  };
  return (
    <form class="edit" onSubmit={submit}>
      <textarea ref={area} aria-label="Edited text" rows={3} value={value} onInput={(event) => setValue(event.currentTarget.value)} onKeyDown={keys} />
      <div class="actions">
        <button type="submit" class="primary small" disabled={!value.trim()}>Save and send</button>
        <button type="button" class="small" onClick={onCancel}>Cancel</button>
      </div>
    </form>
  );
}

function MessageView({ message, trace, isLastAnswer, busy, actions, observe }) {
  const [editing, setEditing] = useState(false);
  const labelId = `message-${keyOf(message)}-role`;
  const isUser = message.role === "user";
  const isAnswer = message.role === "assistant";
  const { thought, sources } = isAnswer ? splitSources(message.thought_process) : {};
  return (
    <article class={`message ${message.role}${message.pending ? " pending" : ""}`} aria-labelledby={labelId}>
      <header class="message-head">
        <span class="role" id={labelId}>{roleName(message.role)}</span>
        {isAnswer && <Facts message={message} />}
        {message.status && message.status !== "complete" && <span class={`badge ${message.status}`}>{message.status}</span>}
      </header>
      {editing ? (
        <EditBox
          text={message.content}
          onCancel={() => setEditing(false)}
          onSend={(text) => {
            setEditing(false);
            actions.send(text, message.files);
          }}
        />
      ) : message.content && isUser ? (
        <div class="plain">{message.content}</div> // what the person typed, as typed: <tags> included
      ) : message.content ? (
        <Markdown text={message.content} observe={observe} />
      ) : (
        <p class="muted">{message.status === "cancelled" ? "Stopped before any text." : "No text."}</p>
      )}
      {isUser && message.files?.length > 0 && <Attachments files={message.files} />}
      {sources && <p class="sources muted">Files used: {sources}</p>}
      {!editing && !message.pending && (isUser || isAnswer) && (
        <div class="actions">
          {isAnswer && <CopyButton text={message.content} />}
          {isAnswer && isLastAnswer && (
            <button type="button" class="small" disabled={busy} onClick={actions.regenerate}>Regenerate</button>
          )}
          {isUser && (
            <button type="button" class="small" disabled={busy} onClick={() => setEditing(true)}>Edit</button>
          )}
        </div>
      )}
      {trace ? <Trace steps={trace} /> : thought && <ThoughtProcess text={thought} />}
    </article>
  );
}

const MemoMessage = memo(
  MessageView,
  (a, b) =>
    a.message === b.message &&
    a.isLastAnswer === b.isLastAnswer &&
    a.busy === b.busy &&
    a.actions === b.actions &&
    a.observe === b.observe &&
    sameList(a.trace, b.trace),
);

function LiveMessage({ run }) {
  const [, setFrame] = useState(0);
  useEffect(() => {
    let frame = 0;
    const unsubscribe = subscribe(run, () => {
      frame ||= requestAnimationFrame(() => {
        frame = 0;
        setFrame((count) => count + 1);
      });
    });
    return () => {
      unsubscribe();
      cancelAnimationFrame(frame);
    };
  }, [run]);
  // shown once the server has taken the run (the address then names its chat, for a reload)
  if (!run.sessionId) return null;
  const step = run.steps.at(-1);
  const writing = run.status === "running";
  return (
    <article class="message assistant live" aria-labelledby="live-role" aria-busy={writing ? "true" : undefined}>
      <header class="message-head">
        <span class="role" id="live-role">Assistant</span>
        {writing && <span class="muted">{step?.agent ? `${step.agent} is writing…` : "Writing…"}</span>}
      </header>
      <Markdown text={shownText(run)} />
      {hasAgents(run) && <LiveTrace steps={run.steps} />}
    </article>
  );
}

export function Conversation({ chat, actions, busy, loading }) {
  const log = useRef(null);
  const content = useRef(null);
  const stuck = useRef(true); // whether the view follows the end of the conversation
  const observe = useMemo(() => lazyObserver(log), []);

  useLayoutEffect(() => {
    const element = log.current;
    const follow = new ResizeObserver(() => {
      if (stuck.current) element.scrollTop = element.scrollHeight;
    });
    follow.observe(content.current);
    return () => follow.disconnect();
  }, []);

  // a new turn brings the view to the end
  const count = chat.messages.length;
  useLayoutEffect(() => {
    stuck.current = true;
    log.current.scrollTop = log.current.scrollHeight;
  }, [count === 0, chat.live]);

  const onScroll = (event) => {
    const element = event.currentTarget;
    stuck.current = element.scrollHeight - element.scrollTop - element.clientHeight < 48;
  };

  let lastAnswer = -1;
  chat.messages.forEach((message, index) => {
    if (message.role === "assistant") lastAnswer = index;
  });

  return (
    <div class="log" role="log" aria-label="Conversation" aria-live="off" ref={log} onScroll={onScroll} tabIndex={0}>
      <div ref={content} class="log-content">
        {loading && <p class="muted">Loading the conversation…</p>}
        {!loading && !count && !chat.live && <p class="muted empty">Start the conversation: write a message below.</p>}
        {chat.messages.map((message, index) => (
          <MemoMessage
            key={keyOf(message)}
            message={message}
            trace={message.id != null ? chat.traces.get(message.id) : undefined}
            isLastAnswer={index === lastAnswer && !chat.live}
            busy={busy}
            actions={actions}
            observe={observe}
          />
        ))}
        {chat.live && <LiveMessage run={chat.live} />}
      </div>
    </div>
  );
}
