// How numbers and times read on the pages.

const decimal = new Intl.NumberFormat("en", { maximumFractionDigits: 1 });
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const dateTimeSeconds = new Intl.DateTimeFormat(undefined, { dateStyle: "short", timeStyle: "medium" });

/** A number with at most one decimal, or a dash. */
export function num(value) {
  return value == null || Number.isNaN(value) ? "–" : decimal.format(value);
}

/** Milliseconds, as ms or s. */
export function duration(ms) {
  if (ms == null) return "–";
  return ms >= 1000 ? `${decimal.format(ms / 1000)} s` : `${decimal.format(ms)} ms`;
}

/** A date and time in the reader's locale, or a dash. */
export function when(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : dateTime.format(date);
}

/** Unix seconds as a date and a time to the second, in the reader's locale. */
export function clock(seconds) {
  return dateTimeSeconds.format(new Date(seconds * 1000));
}

/** A long span of seconds, as days, hours and minutes. */
export function span(seconds) {
  const minutes = Math.floor(seconds / 60);
  if (minutes < 1) return `${Math.floor(seconds)} s`;
  const parts = [[Math.floor(minutes / 1440), "d"], [Math.floor(minutes / 60) % 24, "h"], [minutes % 60, "min"]];
  return parts.filter(([value]) => value).map(([value, unit]) => `${value} ${unit}`).join(" ");
}

/** A size in bytes, as B, KB or MB. */
export function bytes(size) {
  if (size == null) return "–";
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${decimal.format(size / 1024)} KB`;
  return `${decimal.format(size / (1024 * 1024))} MB`;
}

const KINDS = { "application/pdf": "PDF", "text/csv": "CSV", "text/markdown": "MD", "text/html": "HTML" };

/** A short tag for a file's kind (PDF, PNG, TXT…), from its name's extension or its content type. */
export function fileKind(name, type) {
  const extension = /\.([a-z0-9]{1,5})$/i.exec(name || "");
  if (extension) return extension[1].toUpperCase();
  if (KINDS[type]) return KINDS[type];
  const subtype = /^[a-z]+\/([a-z0-9]{1,5})$/i.exec(type || "");
  return subtype ? subtype[1].toUpperCase() : "FILE";
}

/** Where a stored file's bytes are (an attachment to download; an <img> of the page may show an image). */
export const fileContent = (id) => `/files/${encodeURIComponent(id)}/content`;

/** Whether a content type is an image the page can show as a thumbnail. */
export const isImage = (type) => /^image\/(png|jpeg|webp|gif)$/.test(type || "");
