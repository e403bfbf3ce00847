// The admin console's building blocks: DOM helpers that put API values on the page as text only
// (text nodes and attributes, never markup), the JSON API client with the session cookie and the
// CSRF header, and the filtered, paged tables.
export const $ = (id) => document.getElementById(id);
export const enc = encodeURIComponent;
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- building blocks ---------------------------------------------------------------------

/** An element with attributes and children; strings become text nodes, never markup. */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "onclick") node.addEventListener("click", value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Text that only screen readers get, to give repeated buttons a distinct name. */
export const hidden = (text) => el("span", { class: "visually-hidden" }, text);
export const dash = (value) => (value === null || value === undefined || value === "" ? "—" : value);
export const cell = (value, attrs) => el("td", attrs, dash(value));
export const numCell = (value) => cell(value, { class: "num" });
export const mono = (value) => el("span", { class: "mono" }, dash(value));
export const badge = (value) => el("span", { class: `badge badge-${String(value).replace(/[^a-z_]/g, "")}` }, dash(value));

export function time(iso) {
  if (!iso) return "—";
  const shown = String(iso).slice(0, 19).replace("T", " ");
  return el("time", { datetime: iso }, `${shown} UTC`);
}

/** Replace a table body's rows, keeping keyboard focus on the same control if it is redrawn. */
export function fill(tbody, rows, emptyText, columns) {
  const focused = document.activeElement;
  const key = focused && tbody.contains(focused) ? focused.dataset.focusKey : undefined;
  tbody.replaceChildren(...rows);
  if (!rows.length) {
    tbody.append(el("tr", {}, el("td", { colspan: columns, class: "empty" }, emptyText)));
  }
  if (key) {
    const again = tbody.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}

export function fields(dl, pairs) {
  dl.replaceChildren();
  for (const [label, value] of pairs) {
    dl.append(el("dt", {}, label), el("dd", {}, value instanceof Node ? value : dash(value)));
  }
}

/** Put a message in a live region. */
export function say(id, text, isError) {
  const region = $(id);
  region.textContent = text;
  region.classList.toggle("error", Boolean(isError));
}

// ---- the API -----------------------------------------------------------------------------

export function problemText(status, body) {
  if (!body || typeof body !== "object") return `HTTP ${status}`;
  const head = `${status} ${body.title || ""}`.trim();
  return body.detail ? `${head}: ${body.detail}` : head;
}

/** Call the JSON API with the session cookie (and a JSON body); POSTs carry the CSRF header. */
export async function api(method, path, params, json) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== "" && value !== null && value !== undefined) url.searchParams.set(name, value);
  }
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-Requested-With"] = "bitloot-admin";
  const options = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(url, options);
  } catch (error) {
    return { ok: false, status: 0, body: null, message: `The engine did not answer (${error.message})` };
  }
  const body = await response.json().catch(() => null);
  if (response.status === 401) {
    say("session-status", "Your session has ended. Reload the page to sign in again.", true);
  }
  const message = response.ok ? "" : problemText(response.status, body);
  return { ok: response.ok, status: response.status, body, message };
}

// ---- paged lists ---------------------------------------------------------------------------

/** A filtered, paged table: the form's fields are the query; "Next page" follows next_cursor. */
export function pagedList(name, path, renderRow, columns, prepare) {
  const section = $(name);
  const form = $(`${name}-filter`);
  const tbody = section.querySelector(`#${name}-table tbody`);
  const next = section.querySelector('[data-page="next"]');
  const first = section.querySelector('[data-page="first"]');
  let nextCursor = null;
  let latest = 0; // only the newest request's answer is drawn

  /** Load a page; a live redraw (`quiet`) leaves the status line, which may hold what an
   * admin's last action did, as it is. */
  async function load(cursor, quiet = false) {
    const mine = ++latest;
    if (!quiet) say(`${name}-status`, "Loading…");
    const params = Object.fromEntries(new FormData(form));
    if (prepare) prepare(params);
    params.cursor = cursor || "";
    const answer = await api("GET", path, params);
    if (mine !== latest) return undefined;
    if (!answer.ok) return say(`${name}-status`, answer.message, true);
    const items = answer.body.items;
    fill(tbody, items.map(renderRow), "Nothing matches.", columns);
    nextCursor = answer.body.next_cursor;
    next.disabled = !nextCursor;
    first.disabled = !cursor;
    const more = nextCursor ? "; more on the next page" : "";
    return quiet ? undefined : say(`${name}-status`, `${items.length} shown${more}.`);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load(null);
  });
  form.addEventListener("reset", () => setTimeout(() => load(null), 0));
  next.addEventListener("click", () => load(nextCursor));
  first.addEventListener("click", () => load(null));
  load.onFirstPage = () => first.disabled;
  return load;
}

/**
 * Ask in the page's modal dialog; resolves to null when the admin cancels, else to the JSON body
 * of the action: `{}`, or `{[note]: text}` when the action takes a note (`note`: its field's
 * name; `required`: the dialog is not confirmed without one).
 */
export function confirmed(text, note = null, required = false) {
  const dialog = $("confirm");
  const field = $("confirm-note");
  $("confirm-text").textContent = text;
  $("confirm-note-field").hidden = note === null;
  field.value = "";
  field.required = required;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      if (dialog.returnValue !== "confirm") return resolve(null);
      const written = field.value.trim();
      return resolve(note !== null && written ? { [note]: written } : {});
    }, { once: true });
    dialog.showModal();
  });
}
