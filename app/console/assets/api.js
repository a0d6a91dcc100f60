// The gateway's public API, as any client calls it: the credential from this tab's session storage
// as `Authorization: Bearer`, JSON in and out, errors as the envelope gives them.

import { h } from "./dom.js";

const KEY = "gateway-console.credential";

export const credential = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => (value ? sessionStorage.setItem(KEY, value) : sessionStorage.removeItem(KEY)),
};

// A BIGINT past 2^53 keeps its digits: JSON.parse would round it (and a rounded key edits another
// row), so it is kept as raw JSON, which JSON.stringify writes back exactly as it came.
export function parse(text) {
  return JSON.parse(text, (key, value, context) =>
    typeof value === "number" && !Number.isSafeInteger(value) && context && /^-?\d+$/.test(context.source)
      ? JSON.rawJSON(context.source)
      : value,
  );
}

export const isRaw = (value) => typeof JSON.isRawJSON === "function" && JSON.isRawJSON(value);

// A value as text (null stays null: the caller shows it apart from the empty string).
export function text(value) {
  if (value === null || value === undefined) return null;
  if (isRaw(value)) return value.rawJSON;
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export class ApiError extends Error {
  constructor(status, body, raw) {
    super(body?.message || raw || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error || "http_" + status;
    this.details = body?.details ?? null;
    this.requestId = body?.request_id ?? null;
  }

  // column -> reason, for the fields of a form
  byColumn() {
    const found = {};
    const add = (p) => p && p.column && !(p.column in found) && (found[p.column] = p.reason || this.message);
    const d = this.details;
    if (Array.isArray(d)) d.forEach(add);
    else if (d && typeof d === "object") {
      (d.problems || []).forEach(add);
      if (d.column) add({ column: d.column, reason: d.reason ? `${d.column}: ${d.reason}` : this.message });
    }
    return found;
  }
}

export async function request(method, path, { json, body, headers = {}, signal } = {}) {
  const sent = new Headers(headers);
  const held = credential.get();
  if (held) sent.set("Authorization", "Bearer " + held);
  if (json !== undefined) {
    sent.set("Content-Type", "application/json");
    body = JSON.stringify(json);
  }
  return fetch(path, { method, headers: sent, body, signal, credentials: "omit" });
}

// A credential refused mid-session (a token expired, a key revoked): the page asks for another.
export const REFUSED = "gateway-console:refused";

async function failure(response) {
  const raw = await response.text();
  let body = null;
  try {
    body = raw ? parse(raw) : null;
  } catch {
    body = null;
  }
  const error = new ApiError(response.status, body, raw.slice(0, 300));
  if (response.status === 401 && credential.get()) window.dispatchEvent(new CustomEvent(REFUSED, { detail: error }));
  return error;
}

export async function api(method, path, options) {
  const response = await request(method, path, options);
  if (!response.ok) throw await failure(response);
  const raw = await response.text();
  return raw ? parse(raw) : null;
}

// Server-Sent Events read with fetch (EventSource cannot send an Authorization header).
export async function* events(path, signal) {
  const response = await request("GET", path, { signal, headers: { Accept: "text/event-stream" } });
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer = (buffer + value).replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const content = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event = content;
        else if (field === "data") data.push(content);
      }
      if (data.length) yield { event, data: parse(data.join("\n")) };
    }
  }
}

// A file the API answers (an export), saved through a link to the downloaded bytes.
export async function download(method, path, json) {
  const response = await request(method, path, { json });
  if (!response.ok) throw await failure(response);
  const disposition = response.headers.get("Content-Disposition") || "";
  const star = /filename\*=UTF-8''([^;]+)/i.exec(disposition);
  const plain = /filename="([^"]+)"/i.exec(disposition);
  const name = star ? decodeURIComponent(star[1]) : plain ? plain[1] : "export";
  const url = URL.createObjectURL(await response.blob());
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return name;
}

// An error where it happened: status, code, message, and each problem the details list.
export function problem(error) {
  if (!(error instanceof ApiError)) return h("div", { class: "error", role: "alert" }, String(error?.message || error));
  const listed = [];
  const d = error.details;
  for (const p of Array.isArray(d) ? d : d?.problems || []) {
    if (p && typeof p === "object") listed.push(h("li", {}, [p.column, p.reason || p.problem || JSON.stringify(p)].filter(Boolean).join(": ")));
  }
  return h(
    "div",
    { class: "error", role: "alert", "data-status": error.status, "data-code": error.code },
    h("strong", {}, `${error.status} ${error.code}`),
    " ",
    error.message,
    listed.length ? h("ul", {}, listed) : null,
  );
}

export const path = (...parts) => parts.map((p) => encodeURIComponent(p)).join("/");

// A table's routes by their long form, /api/tables/{table}/...: any name is a table's there (a table
// called "batch", "rpc" or "tables" included), never one of the gateway's own routes.
export const tableUrl = (name, ...rest) => ["/api/tables", encodeURIComponent(name), ...rest].join("/");

// A value as a column shows it: a JSON column's value as JSON (a JSON string keeps its quotes).
export function shown(column, value) {
  if (value === null || value === undefined) return null;
  return column?.kind === "json" ? JSON.stringify(value) : text(value);
}

// A file sent with its upload's progress (fetch tells none), answered as api() answers.
export function upload(path, form, progress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    const held = credential.get();
    if (held) xhr.setRequestHeader("Authorization", "Bearer " + held);
    xhr.upload.onprogress = (e) => e.lengthComputable && progress(e.loaded, e.total);
    xhr.onerror = () => reject(new Error("the upload failed: the connection broke"));
    xhr.onload = () => {
      let body = null;
      try {
        body = xhr.responseText ? parse(xhr.responseText) : null;
      } catch {
        body = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) return resolve(body);
      const error = new ApiError(xhr.status, body, xhr.responseText.slice(0, 300));
      if (xhr.status === 401 && credential.get()) window.dispatchEvent(new CustomEvent(REFUSED, { detail: error }));
      reject(error);
    };
    xhr.send(form);
  });
}
