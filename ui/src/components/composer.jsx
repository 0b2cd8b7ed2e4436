// The message box: model and pipeline, the files attached, the text, Send and Stop. Enter sends,
// Shift+Enter starts a new line, Esc stops the answer. Files come from the Attach files button, by
// dropping them on the box, or by pasting (an image copied to the clipboard).

import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "../api.js";
import { attachedFile, isWaiting, useAttachments } from "../chat/attachments.js";
import { bytes, fileContent, fileKind, isImage } from "../format.js";

function useChoices() {
  const [models, setModels] = useState([]);
  const [pipelines, setPipelines] = useState([]);
  useEffect(() => {
    api.get("/v1/models").then(
      // pipeline/* ids serve the OpenAI-compatible API; here the Pipeline choice says that
      (list) => setModels(list.data.map((model) => model.id).filter((id) => !id.startsWith("pipeline/"))),
      () => setModels([]),
    );
    api.get("/pipelines").then(
      (list) => setPipelines(list.items),
      () => setPipelines([]),
    );
  }, []);
  return { models, pipelines };
}

function PaperClip() {
  return (
    <svg aria-hidden="true" viewBox="0 0 24 24" width="18" height="18" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">
      <path d="M21 11.5 12.6 19.9a5.5 5.5 0 0 1-7.8-7.8l8.5-8.5a3.7 3.7 0 0 1 5.2 5.2l-8.5 8.5a1.8 1.8 0 0 1-2.6-2.6L15.2 7" />
    </svg>
  );
}

function chipState(chip) {
  if (chip.status === "uploading") return "Uploading…";
  if (chip.status === "processing") return `Reading… ${Math.round((chip.progress || 0) * 100)}%`;
  if (chip.status === "failed") return chip.error;
  const facts = [bytes(chip.file?.size ?? chip.size)];
  const pages = chip.file?.pages;
  if (pages > 1) facts.push(`${pages} pages`);
  return facts.join(" · ");
}

function Chip({ chip, onRemove }) {
  const waiting = isWaiting(chip);
  return (
    <li class={`chip ${chip.status}`} aria-busy={waiting ? "true" : undefined}>
      {chip.file && isImage(chip.file.content_type) ? (
        <img class="chip-thumb" src={fileContent(chip.file.id)} alt="" />
      ) : (
        <span class="chip-kind" aria-hidden="true">{fileKind(chip.name, chip.type)}</span>
      )}
      <span class="chip-text">
        <span class="chip-name" title={chip.name}>{chip.name}</span>
        <span class={`chip-state${chip.status === "failed" ? " error" : ""}`}>{chipState(chip)}</span>
      </span>
      <button type="button" class="chip-remove" aria-label={`Remove ${chip.name}`} title="Remove" onClick={() => onRemove(chip.key)}>
        ×
      </button>
      {waiting && (
        <progress
          class="chip-progress"
          max={1}
          value={chip.status === "processing" ? chip.progress || 0 : undefined}
          aria-label={`${chip.status === "uploading" ? "Uploading" : "Reading"} ${chip.name}`}
        />
      )}
    </li>
  );
}

const carriesFiles = (event) => Array.from(event.dataTransfer?.types || []).includes("Files");

export function Composer({ busy, choice, onChoose, onSend, onStop }) {
  const { models, pipelines } = useChoices();
  const [text, setText] = useState("");
  const [news, setNews] = useState("");
  const [dragging, setDragging] = useState(false);
  const attachments = useAttachments({ onNews: setNews });
  const picker = useRef(null);
  const box = useRef(null);
  const list = useRef(null);
  const focusAfter = useRef(null); // the place of a chip just removed: the focus goes to its neighbour
  const dragDepth = useRef(0);
  const { model, pipeline } = choice;
  const { chips } = attachments;
  const waiting = chips.some(isWaiting);
  const canSend = !busy && !waiting && text.trim() !== "";

  // a file dropped beside the box is not opened by the browser in place of this page
  useEffect(() => {
    const ignore = (event) => {
      if (!carriesFiles(event) || event.defaultPrevented) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "none";
    };
    window.addEventListener("dragover", ignore);
    window.addEventListener("drop", ignore);
    return () => {
      window.removeEventListener("dragover", ignore);
      window.removeEventListener("drop", ignore);
    };
  }, []);

  useEffect(() => {
    if (focusAfter.current === null) return;
    const buttons = list.current?.querySelectorAll(".chip-remove") ?? [];
    const next = buttons[Math.min(focusAfter.current, buttons.length - 1)];
    focusAfter.current = null;
    (next || box.current)?.focus();
  }, [chips]);

  const submit = async (event) => {
    event?.preventDefault();
    if (!canSend) return;
    const sent = text;
    const taken = attachments.take();
    const files = taken.filter((chip) => chip.status === "ready").map(attachedFile);
    setText("");
    setNews("");
    const accepted = await onSend(sent, files);
    if (accepted) {
      attachments.discard(taken);
    } else {
      setText((current) => current || sent);
      attachments.restore(taken);
    }
  };

  const keys = (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    } else if (event.key === "Escape" && busy) {
      event.preventDefault();
      onStop();
    }
  };

  const remove = (key) => {
    const index = chips.findIndex((chip) => chip.key === key);
    const chip = chips[index];
    focusAfter.current = index;
    attachments.remove(key);
    if (chip) setNews(`${chip.name} removed.`);
  };

  const pick = (event) => {
    attachments.add(event.currentTarget.files);
    event.currentTarget.value = ""; // the same file can be chosen again
  };

  const paste = (event) => {
    const files = Array.from(event.clipboardData?.files || []);
    if (!files.length) return;
    event.preventDefault();
    attachments.add(files);
  };

  const drag = {
    onDragEnter: (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      dragDepth.current += 1;
      setDragging(true);
    },
    onDragOver: (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    },
    onDragLeave: (event) => {
      if (!carriesFiles(event)) return;
      dragDepth.current = Math.max(0, dragDepth.current - 1);
      if (!dragDepth.current) setDragging(false);
    },
    onDrop: (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      dragDepth.current = 0;
      setDragging(false);
      attachments.add(event.dataTransfer.files);
      box.current?.focus();
    },
  };

  return (
    <form class={`composer${dragging ? " dropping" : ""}`} onSubmit={submit} {...drag}>
      <div class="choices">
        <div class="field">
          <label for="choice-model">Model</label>
          <select id="choice-model" value={model} onChange={(event) => onChoose("model", event.currentTarget.value)}>
            <option value="">Server default</option>
            {model && models.length > 0 && !models.includes(model) && <option value={model}>{model} (not available now)</option>}
            {models.map((id) => <option key={id} value={id}>{id}</option>)}
          </select>
        </div>
        <div class="field">
          <label for="choice-pipeline">Pipeline</label>
          <select id="choice-pipeline" value={pipeline} onChange={(event) => onChoose("pipeline", event.currentTarget.value)}>
            <option value="">Server default</option>
            {pipeline && pipelines.length > 0 && !pipelines.some((item) => item.name === pipeline) && (
              <option value={pipeline}>{pipeline} (not available now)</option>
            )}
            {pipelines.map((item) => (
              <option key={item.name} value={item.name} title={item.description}>{item.name}</option>
            ))}
          </select>
        </div>
      </div>
      {chips.length > 0 && (
        <ul class="chips" aria-label="Attached files" ref={list}>
          {chips.map((chip) => <Chip key={chip.key} chip={chip} onRemove={remove} />)}
        </ul>
      )}
      <div class="write">
        <button
          type="button"
          class="attach"
          aria-label="Attach files"
          title="Attach files (or drop them here, or paste an image)"
          onClick={() => picker.current.click()}
        >
          <PaperClip />
        </button>
        <input ref={picker} type="file" multiple hidden tabIndex={-1} onChange={pick} />
        <label for="message" class="sr-only">Message</label>
        <textarea
          id="message"
          ref={box}
          rows={2}
          placeholder="Write a message (Enter sends, Shift+Enter for a new line)"
          value={text}
          onInput={(event) => setText(event.currentTarget.value)}
          onKeyDown={keys}
          onPaste={paste}
        />
        <div class="send">
          <button type="submit" class="primary" disabled={!canSend} title={waiting ? "Waiting for the files to be read" : undefined}>
            Send
          </button>
          <button type="button" disabled={!busy} onClick={onStop}>Stop</button>
        </div>
      </div>
      {dragging && <p class="drop-hint" aria-hidden="true">Drop the files to attach them</p>}
      <div role="status" aria-live="polite" class="sr-only">{news}</div>
    </form>
  );
}
