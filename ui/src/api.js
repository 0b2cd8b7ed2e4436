// Fetch helpers for the AI-Lab API (same origin, signed in with the session cookie).
//
// Every request carries the cookie; every state change is sent as JSON (the server refuses a
// cookie-authenticated change that is not), even when it has nothing to say: `{}`. A file upload is
// the one multipart request, marked with X-Requested-With instead.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let onSignedOut = () => {};

/** Called with no argument when the server answers 401: the session has ended. */
export function whenSignedOut(callback) {
  onSignedOut = callback;
}

function describe(detail, fallback) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((item) => (item && item.msg ? item.msg : String(item))).join("; ");
  }
  return fallback;
}

async function problem(response) {
  let detail;
  try {
    const body = await response.json();
    detail = body.detail ?? body.error?.message;
  } catch {
    detail = undefined;
  }
  const fallback = `${response.status} ${response.statusText || "error"}`;
  return new ApiError(response.status, describe(detail, fallback));
}

/** The raw response of a request, after its status was checked. */
export async function send(method, path, { body, headers = {}, signal, signIn = false } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json", ...headers }, signal };
  if (method !== "GET") {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body ?? {});
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    if (response.status === 401 && !signIn) onSignedOut();
    throw await problem(response);
  }
  return response;
}

/**
 * Uploads `file` as multipart/form-data (field `file`) and answers `{status, body}`. The header
 * X-Requested-With tells the server a page of its own sent it (a cookie-signed upload without it is
 * refused as a possible cross-site request).
 */
export async function upload(path, file, { signal } = {}) {
  const form = new FormData();
  form.append("file", file, file.name);
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { Accept: "application/json", "X-Requested-With": "fetch" },
    body: form,
    signal,
  });
  if (!response.ok) {
    if (response.status === 401) onSignedOut();
    throw await problem(response);
  }
  return { status: response.status, body: await response.json() };
}

async function call(method, path, options) {
  const response = await send(method, path, options);
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

export const api = {
  get: (path, options) => call("GET", path, options),
  post: (path, body, options) => call("POST", path, { ...options, body }),
  patch: (path, body, options) => call("PATCH", path, { ...options, body }),
  del: (path, options) => call("DELETE", path, options),
};

/** `path` with the query parameters that are set. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(name, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

/**
 * Reads a Server-Sent Events body, calling `onEvent({id, data})` for each event (`data` parsed
 * from JSON), until `data: [DONE]` or the end of the body. Answers whether `[DONE]` came.
 */
export async function readEvents(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return false;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let id = null;
      const data = [];
      for (const line of block.split("\n")) {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "id") id = Number(text);
        else if (field === "data") data.push(text);
      }
      if (!data.length) continue;
      const payload = data.join("\n");
      if (payload === "[DONE]") {
        reader.cancel().catch(() => {});
        return true;
      }
      onEvent({ id, data: JSON.parse(payload) });
    }
  }
}

/** Saves `content` as a file named `filename` in the browser's downloads. */
export function download(content, filename, type) {
  const url = URL.createObjectURL(new Blob([content], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** The file name a response's Content-Disposition gives, or `fallback`. */
export function attachmentName(response, fallback) {
  const header = response.headers.get("content-disposition") || "";
  const match = /filename="?([^";]+)"?/.exec(header);
  return match ? match[1] : fallback;
}
