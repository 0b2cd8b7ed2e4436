// One chat's messages, agent steps and running answer, kept in step with the server.
//
// A run belongs to the server, not to this page: leaving a chat (or reloading) only stops reading
// its events. Opening a chat reads its stored messages, then, when a run of it still goes on,
// follows that run's events from the first, so the growing answer is rebuilt whole.

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError, api, readEvents, send, withQuery } from "../api.js";
import { navigate } from "../router.js";
import { applyEvent, newRun, notify } from "./run.js";
import { keepKnown, matchTraces } from "./traces.js";

const PAGE_SIZE = 500;
const RETRIES = 5;

const sessionPath = (id) => `/sessions/${encodeURIComponent(id)}`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const lastSeq = (messages, fallback) => (messages.length ? messages.at(-1).seq : fallback);

/** The messages of a session with `seq` > `after`, every page of them. */
async function loadMessages(id, after) {
  const items = [];
  let cursor = after;
  for (;;) {
    const page = await api.get(withQuery(`${sessionPath(id)}/messages`, { after: cursor, limit: PAGE_SIZE }));
    items.push(...page.items);
    if (page.next_after == null) return items;
    cursor = page.next_after;
  }
}

function resumeFrom(run) {
  return (signal) =>
    send("GET", `/runs/${encodeURIComponent(run.id)}/events`, {
      headers: { "Last-Event-ID": String(run.lastEventId) },
      signal,
    });
}

function announcementOf(run) {
  if (run.status === "done") {
    const words = run.response.replace(/[#*_`>|[\]()-]+/g, " ").trim().split(/\s+/).slice(0, 12).join(" ");
    return words ? `Answer finished: ${words}` : "Answer finished.";
  }
  if (run.status === "cancelled") return "Answer stopped.";
  return `Answer failed: ${run.error}`;
}

let pendingCount = 0;

export function useChat(sessionId, { onSession, onRunEnd }) {
  const [session, setSession] = useState(null);
  const [messages, setMessages] = useState([]);
  const [states, setStates] = useState([]);
  const [live, setLive] = useState(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState("");
  const [announcement, setAnnouncement] = useState("");
  const self = useRef({ sessionId: undefined, generation: 0, controller: null, lastSeq: -1, live: null }).current;
  const callbacks = useRef(null);
  callbacks.current = { onSession, onRunEnd };

  const refreshStates = async (id) => {
    try {
      const list = await api.get(`${sessionPath(id)}/agent-states`);
      if (self.sessionId === id) setStates((known) => keepKnown(known, list.items));
    } catch {
      // the trace is an extra: the conversation stands without it
    }
  };

  const finish = async (run, generation) => {
    const id = run.sessionId || self.sessionId;
    let tail = null;
    if (id && !run.refused) {
      try {
        tail = await loadMessages(id, self.lastSeq);
      } catch {
        tail = null;
      }
    }
    if (generation !== self.generation) return;
    if (tail) {
      const answer = tail.findLast((message) => message.role === "assistant");
      if (answer && run.final) {
        const { ttft_ms, tokens_per_second } = run.final;
        tail[tail.indexOf(answer)] = { ...answer, ttft_ms, tokens_per_second };
      }
      self.lastSeq = lastSeq(tail, self.lastSeq);
    }
    setMessages((current) => {
      if (tail || run.refused) {
        const stored = current.filter((message) => !message.pending);
        return tail ? [...stored, ...tail] : stored;
      }
      // the stored messages could not be read: keep what this page saw
      const kept = current.map((message) => (message.pending ? { ...message, pending: false } : message));
      if (!run.response) return kept;
      return [...kept, { key: `local-${++pendingCount}`, role: "assistant", content: run.response, status: run.status }];
    });
    self.live = null;
    self.controller = null;
    setLive(null);
    if (run.status === "error") setError(run.refused ? `The message was not sent: ${run.error}` : run.error);
    setAnnouncement(announcementOf(run));
    if (id) refreshStates(id);
    callbacks.current.onRunEnd?.(id);
  };

  const sessionKnown = (run) => {
    if (!self.sessionId) {
      self.sessionId = run.sessionId;
      navigate("chat", run.sessionId, { replace: true });
    }
    callbacks.current.onSession?.(run.sessionId);
  };

  const stop = async () => {
    const run = self.live;
    if (!run || run.status !== "running") return;
    if (!run.id) {
      run.stopRequested = true; // sent as soon as the run has an id
      return;
    }
    try {
      await api.post(`/runs/${encodeURIComponent(run.id)}/cancel`, {});
    } catch (failure) {
      if (failure.status !== 409) setError(`Could not stop the answer: ${failure.message}`);
    }
  };

  /** Reads a run's events until it ends, picking the stream up again when the connection drops. */
  const follow = async (run, start) => {
    const controller = new AbortController();
    const generation = self.generation;
    self.controller = controller;
    self.live = run;
    setLive(run);
    let failures = 0;
    while (run.status === "running") {
      try {
        const response = await start(controller.signal);
        run.id ||= response.headers.get("X-Run-Id");
        if (run.stopRequested) stop();
        const done = await readEvents(response, (event) => {
          applyEvent(run, event);
          if (event.data.type === "run") sessionKnown(run);
        });
        if (done && run.status === "running") run.status = "done";
      } catch (failure) {
        if (controller.signal.aborted) return;
        if (!run.id || failure instanceof ApiError) {
          run.status = "error";
          run.error = failure.message;
          run.refused = !run.id;
        }
      }
      if (run.status !== "running") break;
      failures += 1;
      if (failures > RETRIES) {
        run.status = "error";
        run.error = "The connection to the server was lost; reload the page to pick the answer up.";
        break;
      }
      await sleep(1000 * failures);
      if (controller.signal.aborted) return;
      start = resumeFrom(run);
    }
    notify(run);
    await finish(run, generation);
  };

  const open = async (id) => {
    self.controller?.abort();
    self.controller = null;
    self.live = null;
    const generation = ++self.generation;
    self.sessionId = id;
    self.lastSeq = -1;
    setSession(null);
    setMessages([]);
    setStates([]);
    setLive(null);
    setError("");
    setAnnouncement("");
    if (!id) {
      setLoading(false);
      return;
    }
    setLoading(true);
    try {
      const about = await api.get(sessionPath(id));
      // runs first: a run that ends meanwhile is then in the messages, and its replay is not doubled
      const running = await api.get(withQuery(`${sessionPath(id)}/runs`, { status: "running", limit: 1 }));
      const items = await loadMessages(id, -1);
      if (generation !== self.generation) return;
      setSession(about);
      self.lastSeq = lastSeq(items, -1);
      setMessages(items);
      setLoading(false);
      refreshStates(id);
      const current = running.items[0];
      if (current) {
        const run = newRun();
        run.id = current.id;
        run.sessionId = id;
        follow(run, resumeFrom(run));
      }
    } catch (failure) {
      if (generation !== self.generation) return;
      setLoading(false);
      setError(failure.status === 404 ? "This chat does not exist." : failure.message);
    }
  };

  /** Sends a message as a new turn, with `files` ({id, filename, content_type}) attached; answers
   * false when the server refused it. */
  const sendMessage = async (text, { model, pipeline, files } = {}) => {
    if (self.live || !text.trim()) return false;
    setError("");
    const attached = files?.length ? files : null;
    const body = {
      message: text,
      stream: true,
      session_id: self.sessionId || undefined,
      model: model || undefined,
      pipeline: pipeline || undefined,
      files: attached ? attached.map((file) => file.id) : undefined,
    };
    setMessages((current) => [
      ...current,
      { key: `pending-${++pendingCount}`, role: "user", content: text, files: attached, status: "complete", pending: true },
    ]);
    const run = newRun(); // its session is known from its first event, when the server has taken it
    await follow(run, (signal) => send("POST", "/chat", { body, signal }));
    return !run.refused;
  };

  useEffect(() => {
    if (sessionId !== self.sessionId) open(sessionId);
  }, [sessionId]);

  // leaving the page stops reading the events; the run itself goes on
  useEffect(() => () => self.controller?.abort(), []);

  const traces = useMemo(() => matchTraces(messages, states), [messages, states]);
  return { session, messages, traces, live, loading, error, announcement, send: sendMessage, stop };
}
