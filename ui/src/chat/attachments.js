// The files attached to the message being written.
//
// A file uploads as soon as it is chosen (POST /files), then, while the server reads its text
// ("processing"), is read again (GET /files/{id}) less and less often until it is ready or failed.
// Each one is a chip: {key, name, size, type, status, progress, error, file} where status goes
// "uploading" -> "processing" -> "ready" or "failed" and `file` is the server's record once it has
// one. Removing a chip only detaches the file: it stays among the person's files on the server.

import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, api, upload } from "../api.js";

export const MAX_FILES = 20; // per message, as the server takes them
const POLL_FIRST_MS = 400;
const POLL_MAX_MS = 3000;

let counter = 0;

/** Whether a chip still waits for the server (the message cannot be sent yet). */
export const isWaiting = (chip) => chip.status === "uploading" || chip.status === "processing";

/** What a message keeps of a ready chip. */
export const attachedFile = (chip) => ({
  id: chip.file.id,
  filename: chip.file.filename,
  content_type: chip.file.content_type,
});

export function useAttachments({ onNews } = {}) {
  const [chips, setChips] = useState([]);
  // key -> {controller, timer} of a chip that is uploading or being read; id -> key of known files
  const self = useRef({ tasks: new Map(), keyOfId: new Map(), chips: [] }).current;
  self.chips = chips;
  const news = useRef(onNews);
  news.current = onNews;

  const update = (key, change) =>
    setChips((list) => list.map((chip) => (chip.key === key ? { ...chip, ...change } : chip)));

  const stop = (key) => {
    const task = self.tasks.get(key);
    if (!task) return;
    task.controller.abort();
    clearTimeout(task.timer);
    self.tasks.delete(key);
  };

  const release = (list) => {
    for (const chip of list) {
      stop(chip.key);
      if (chip.file && self.keyOfId.get(chip.file.id) === chip.key) self.keyOfId.delete(chip.file.id);
    }
  };

  const fail = (key, name, error) => {
    stop(key);
    update(key, { status: "failed", error });
    news.current?.(`${name} could not be attached: ${error}`);
  };

  /** Takes the server's record of a chip's file: done, or to be read again after `delay`. */
  const settle = (key, name, file, delay) => {
    if (file.status === "failed") {
      fail(key, name, file.error || "The file could not be read.");
      return;
    }
    const other = self.keyOfId.get(file.id);
    if (other !== undefined && other !== key) {
      // the same bytes are attached already: this chip goes
      const chip = self.chips.find((item) => item.key === key);
      release(chip ? [chip] : []);
      stop(key);
      setChips((list) => list.filter((item) => item.key !== key));
      news.current?.(`${name} is attached already.`);
      return;
    }
    self.keyOfId.set(file.id, key);
    if (file.status === "ready") {
      self.tasks.delete(key);
      update(key, { status: "ready", progress: 1, file });
      news.current?.(`${name} is attached.`);
    } else {
      update(key, { status: "processing", progress: file.progress || 0, file });
      poll(key, name, file.id, delay);
    }
  };

  const poll = (key, name, id, delay) => {
    const task = self.tasks.get(key);
    if (!task) return;
    task.timer = setTimeout(async () => {
      const next = Math.min(delay * 1.5, POLL_MAX_MS);
      try {
        const file = await api.get(`/files/${encodeURIComponent(id)}`, { signal: task.controller.signal });
        if (self.tasks.get(key) === task) settle(key, name, file, next);
      } catch (failure) {
        if (task.controller.signal.aborted || self.tasks.get(key) !== task) return;
        if (failure instanceof ApiError) fail(key, name, failure.message);
        else poll(key, name, id, POLL_MAX_MS); // the network: try again
      }
    }, delay);
  };

  const start = async (key, file) => {
    const task = { controller: new AbortController(), timer: 0 };
    self.tasks.set(key, task);
    try {
      const { body } = await upload("/files", file, { signal: task.controller.signal });
      if (self.tasks.get(key) === task) settle(key, file.name, body, POLL_FIRST_MS);
    } catch (failure) {
      if (task.controller.signal.aborted || self.tasks.get(key) !== task) return;
      const error = failure instanceof ApiError ? failure.message : "The upload failed: the server could not be reached.";
      fail(key, file.name, error);
    }
  };

  /** Attaches files (a FileList or an array of File): each uploads at once. */
  const add = (files) => {
    const list = Array.from(files || []);
    if (!list.length) return;
    let room = MAX_FILES - self.chips.filter((chip) => chip.status !== "failed").length;
    const added = list.map((file) => {
      const chip = {
        key: `attachment-${++counter}`,
        name: file.name || "pasted file",
        size: file.size,
        type: file.type,
        status: "uploading",
        progress: 0,
        error: null,
        file: null,
      };
      if (room <= 0) {
        chip.status = "failed";
        chip.error = `At most ${MAX_FILES} files go with one message.`;
      } else {
        room -= 1;
      }
      return { chip, file };
    });
    setChips((current) => [...current, ...added.map(({ chip }) => chip)]);
    for (const { chip, file } of added) if (chip.status === "uploading") start(chip.key, file);
  };

  /** Detaches one chip (its upload or reading stops; the file stays on the server). */
  const remove = (key) => {
    const chip = self.chips.find((item) => item.key === key);
    if (chip) release([chip]);
    setChips((list) => list.filter((item) => item.key !== key));
  };

  /** Empties the composer's chips and answers them (to put back with `restore`, or `discard`). */
  const take = () => {
    const taken = self.chips;
    for (const chip of taken) if (chip.file) self.keyOfId.delete(chip.file.id);
    setChips([]);
    return taken;
  };

  const restore = (taken) => {
    for (const chip of taken) if (chip.file && chip.status !== "failed") self.keyOfId.set(chip.file.id, chip.key);
    setChips((current) => [...taken, ...current]);
  };

  const discard = (taken) => release(taken);

  // leaving the page stops the uploads and the polling (the files already sent stay on the server)
  useEffect(() => () => release(self.chips), []);

  return { chips, add, remove, take, restore, discard };
}
