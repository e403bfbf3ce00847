// BitLoot admin page: plain JavaScript over the JSON admin API, no framework, no build step.
// Every value from the API reaches the page as text (textContent / append of strings), never as
// HTML. The session is an HttpOnly cookie; state-changing calls add X-Requested-With (CSRF).
"use strict";

(() => {
  const SECTIONS = ["dashboard", "orders", "reservations", "webhooks", "projections", "audit"];
  const STATUSES = [
    "created", "pending_payment", "paid", "reserved", "fulfilled",
    "underpaid", "payment_failed", "fulfillment_failed",
  ];
  const POLL_MS = 300;
  const REBUILD_TIMEOUT_MS = 10 * 60 * 1000;
  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // ---- building blocks ---------------------------------------------------------------------

  /** An element with attributes and children; strings become text nodes, never markup. */
  function el(tag, attrs, ...children) {
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
  const hidden = (text) => el("span", { class: "visually-hidden" }, text);
  const dash = (value) => (value === null || value === undefined || value === "" ? "—" : value);
  const cell = (value, attrs) => el("td", attrs, dash(value));
  const numCell = (value) => cell(value, { class: "num" });
  const mono = (value) => el("span", { class: "mono" }, dash(value));
  const badge = (value) => el("span", { class: `badge badge-${String(value).replace(/[^a-z_]/g, "")}` }, dash(value));

  function time(iso) {
    if (!iso) return "—";
    const shown = String(iso).slice(0, 19).replace("T", " ");
    return el("time", { datetime: iso }, `${shown} UTC`);
  }

  /** Replace a table body's rows, keeping keyboard focus on the same control if it is redrawn. */
  function fill(tbody, rows, emptyText, columns) {
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

  function fields(dl, pairs) {
    dl.replaceChildren();
    for (const [label, value] of pairs) {
      dl.append(el("dt", {}, label), el("dd", {}, value instanceof Node ? value : dash(value)));
    }
  }

  /** Put a message in a live region. */
  function say(id, text, isError) {
    const region = $(id);
    region.textContent = text;
    region.classList.toggle("error", Boolean(isError));
  }

  // ---- the API -----------------------------------------------------------------------------

  function problemText(status, body) {
    if (!body || typeof body !== "object") return `HTTP ${status}`;
    const head = `${status} ${body.title || ""}`.trim();
    return body.detail ? `${head}: ${body.detail}` : head;
  }

  /** Call the JSON API with the session cookie; POSTs carry the CSRF header. */
  async function api(method, path, params) {
    const url = new URL(path, window.location.origin);
    for (const [name, value] of Object.entries(params || {})) {
      if (value !== "" && value !== null && value !== undefined) url.searchParams.set(name, value);
    }
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-Requested-With"] = "bitloot-admin";
    let response;
    try {
      response = await fetch(url, { method, headers, credentials: "same-origin", cache: "no-store" });
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
  function pagedList(name, path, renderRow, columns) {
    const section = $(name);
    const form = $(`${name}-filter`);
    const tbody = section.querySelector(`#${name}-table tbody`);
    const next = section.querySelector('[data-page="next"]');
    const first = section.querySelector('[data-page="first"]');
    let nextCursor = null;

    async function load(cursor) {
      say(`${name}-status`, "Loading…");
      const params = Object.fromEntries(new FormData(form));
      params.cursor = cursor || "";
      const answer = await api("GET", path, params);
      if (!answer.ok) return say(`${name}-status`, answer.message, true);
      const items = answer.body.items;
      fill(tbody, items.map(renderRow), "Nothing matches.", columns);
      nextCursor = answer.body.next_cursor;
      next.disabled = !nextCursor;
      first.disabled = !cursor;
      const more = nextCursor ? "; more on the next page" : "";
      return say(`${name}-status`, `${items.length} shown${more}.`);
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      load(null);
    });
    next.addEventListener("click", () => load(nextCursor));
    first.addEventListener("click", () => load(null));
    return load;
  }

  const orderLink = (id) => (id ? el("a", { href: `#orders/${enc(id)}`, class: "mono" }, id) : "—");

  // ---- dashboard -----------------------------------------------------------------------------

  async function loadDashboard() {
    const answer = await api("GET", "/admin/dashboard");
    if (!answer.ok) return say("dashboard-status", answer.message, true);
    const data = answer.body;
    const counts = data.orders_by_status || {};
    const known = STATUSES.filter((s) => s in counts).concat(Object.keys(counts).filter((s) => !STATUSES.includes(s)));
    fill($("dash-status").tBodies[0], known.map((status) => {
      const row = el("tr", {}, el("th", { scope: "row" }, badge(status)), numCell(counts[status]));
      row.dataset.status = status;
      return row;
    }), "No orders yet.", 2);
    const revenue = Object.entries(data.revenue || {});
    fields($("dash-revenue"), revenue.length ? revenue.map(([cur, amount]) => [cur.toUpperCase(), amount]) : [["—", "none yet"]]);
    const latency = data.fulfilment_latency_ms || {};
    fields($("dash-latency"), [
      ["median", latency.median === null ? "—" : `${latency.median} ms`],
      ["95th percentile", latency.p95 === null ? "—" : `${latency.p95} ms`],
      ["orders measured", latency.count],
    ]);
    fill($("dash-projections").tBodies[0], (data.projections || []).map((p) =>
      el("tr", {}, el("th", { scope: "row" }, p.name), numCell(p.version), cell(badge(p.state)), numCell(p.lag_events)),
    ), "No projections.", 4);
    return say("dashboard-status", `Updated ${new Date().toLocaleTimeString()}.`);
  }

  // ---- orders --------------------------------------------------------------------------------

  const loadOrders = pagedList("orders", "/admin/orders", (o) => el("tr", {},
    el("td", {}, orderLink(o.order_id)),
    cell(o.owner),
    cell(badge(o.status)),
    numCell(`${o.total} ${String(o.currency || "").toUpperCase()}`),
    cell(o.supplier_status),
    cell(time(o.updated_at)),
  ), 6);

  function timelineItem(event) {
    const summary = el("summary", {},
      el("span", { class: "version" }, `v${event.version}`), " ",
      el("strong", {}, event.type), " ", time(event.timestamp));
    return el("li", {}, el("details", {}, summary, el("pre", {}, JSON.stringify(event.data, null, 2))));
  }

  let shownOrder = null;

  async function showOrder(id) {
    const detail = $("order-detail");
    shownOrder = id;
    detail.hidden = false;
    $("order-h").textContent = `Order ${id}`;
    $("order-audit").setAttribute("href", `#audit/${enc(id)}`);
    const [order, history] = await Promise.all([
      api("GET", `/orders/${enc(id)}`),
      api("GET", `/orders/${enc(id)}/history`),
    ]);
    if (!order.ok) return say("order-status", order.message, true);
    const o = order.body;
    const placed = history.ok && history.body.length ? history.body[0].data : {};
    fields($("order-fields"), [
      ["Status", badge(o.status)], ["Version", o.version], ["Owner", placed.owner], ["E-mail", o.email],
      ["Total", `${o.total} ${String(o.currency).toUpperCase()}`], ["Invoice", o.invoice_id],
      ["Payment", o.payment_id], ["Kinguin order", o.supplier_order_id], ["Keys", o.key_count],
      ["Failure", o.failure_reason], ["Created", time(o.created_at)], ["Updated", time(o.updated_at)],
    ]);
    const retry = $("order-retry");
    retry.disabled = o.status !== "fulfillment_failed";
    $("order-retry-hint").textContent = retry.disabled ? "Retry is for orders in fulfillment_failed." : "";
    $("order-timeline").replaceChildren(...(history.ok ? history.body.map(timelineItem) : []));
    return say("order-status", history.ok ? `${history.body.length} events.` : history.message, !history.ok);
  }

  async function retryOrder() {
    const id = shownOrder;
    const answer = await api("POST", `/admin/orders/${enc(id)}/retry`);
    if (!answer.ok) return say("order-status", answer.message, true);
    await showOrder(id);
    return say("order-status", `Retried: the order is now ${answer.body.status}.`);
  }

  async function ordersSection(id) {
    await loadOrders(null);
    if (id) return showOrder(id);
    $("order-detail").hidden = true;
    shownOrder = null;
    return undefined;
  }

  // ---- reservations --------------------------------------------------------------------------

  const loadReservations = pagedList("reservations", "/admin/reservations", (o) => el("tr", {},
    el("td", {}, orderLink(o.order_id)),
    cell(mono(o.supplier_order_id)),
    cell(badge(o.supplier_status)),
    cell(badge(o.status)),
    numCell(o.key_count),
    cell(time(o.reserved_at)),
  ), 6);

  // ---- webhooks ------------------------------------------------------------------------------

  async function replay(id) {
    say("webhooks-status", `Replaying delivery ${id}…`);
    const answer = await api("POST", `/admin/webhook-logs/${enc(id)}/replay`);
    if (!answer.ok) return say("webhooks-status", answer.message, true);
    return say("webhooks-status", `Replayed delivery ${id}: ${answer.body.outcome}.`);
  }

  const loadWebhooks = pagedList("webhooks", "/admin/webhook-logs", (w) => el("tr", {},
    cell(time(w.received_at)),
    cell(w.provider),
    cell(w.event_name),
    el("td", {}, orderLink(w.order_id)),
    cell(w.verified ? "yes" : "no"),
    cell(w.outcome),
    el("td", { class: "actions" },
      el("a", { href: `#webhooks/${enc(w.delivery_id)}`, "data-focus-key": `details-${w.delivery_id}` },
        "Details", hidden(` of delivery ${w.delivery_id}`)),
      el("button", { type: "button", "data-focus-key": `replay-${w.delivery_id}`, onclick: () => replay(w.delivery_id) },
        "Replay", hidden(` delivery ${w.delivery_id}`))),
  ), 7);

  function prettyBody(body) {
    try {
      return JSON.stringify(JSON.parse(body), null, 2);
    } catch {
      return String(body);
    }
  }

  let shownDelivery = null;

  async function showDelivery(id) {
    const detail = $("webhook-detail");
    shownDelivery = id;
    detail.hidden = false;
    $("webhook-h").textContent = `Delivery ${id}`;
    const answer = await api("GET", `/admin/webhook-logs/${enc(id)}`);
    if (!answer.ok) return say("webhooks-status", answer.message, true);
    const w = answer.body;
    fields($("webhook-fields"), [
      ["Provider", w.provider], ["Event", w.event_name], ["Key", mono(w.natural_key)],
      ["Order", orderLink(w.order_id)], ["Verified", w.verified ? "yes" : "no"],
      ["Outcome", w.outcome], ["Received", time(w.received_at)],
    ]);
    $("webhook-body").textContent = prettyBody(w.body);
    return undefined;
  }

  async function webhooksSection(id) {
    await loadWebhooks(null);
    if (id) return showDelivery(id);
    $("webhook-detail").hidden = true;
    shownDelivery = null;
    return undefined;
  }

  // ---- projections ---------------------------------------------------------------------------

  function rebuildCell(p) {
    if (!p.rebuild) return cell("—");
    const percent = Math.round(p.rebuild.progress * 100);
    return el("td", {},
      el("progress", { max: "1", value: String(p.rebuild.progress), "aria-label": `Rebuild of ${p.name}` }),
      ` v${p.rebuild.version}: ${percent}%`);
  }

  function projectionActions(p) {
    const button = (action, label) => el("button", {
      type: "button", "data-focus-key": `${action}-${p.name}`, onclick: () => controlProjection(p.name, action),
    }, label, hidden(` ${p.name}`));
    const td = el("td", { class: "actions" }, button("rebuild", "Rebuild"));
    if (p.state === "failed") {
      td.append(button("retry", "Retry"), button("skip", "Skip"));
      td.append(el("p", { class: "error" }, `Stopped at ${p.error.position}: ${p.error.message}`));
    }
    return td;
  }

  function projectionRow(p) {
    const row = el("tr", {},
      el("th", { scope: "row" }, p.name), numCell(p.version), cell(badge(p.state)), numCell(p.position),
      numCell(p.head), numCell(p.lag_events), numCell(Number(p.lag_seconds).toFixed(1)), rebuildCell(p),
      projectionActions(p));
    row.dataset.name = p.name;
    return row;
  }

  async function loadProjections() {
    const answer = await api("GET", "/admin/projections");
    if (!answer.ok) {
      say("projections-status", answer.message, true);
      return null;
    }
    fill($("projections-table").tBodies[0], answer.body.map(projectionRow), "No projections.", 9);
    return answer.body;
  }

  async function controlProjection(name, action) {
    const answer = await api("POST", `/admin/projections/${enc(name)}/${enc(action)}`);
    if (!answer.ok) return say("projections-status", answer.message, true);
    if (action !== "rebuild") {
      await loadProjections();
      return say("projections-status", `${name}: ${action} done; now ${answer.body.state}.`);
    }
    const target = answer.body.rebuild ? answer.body.rebuild.version : answer.body.version + 1;
    say("projections-status", `Rebuilding ${name} as version ${target}…`);
    return followRebuild(name, target);
  }

  /** Poll the projections until ``name`` is live at version ``target`` (or failed). */
  async function followRebuild(name, target) {
    const deadline = Date.now() + REBUILD_TIMEOUT_MS;
    while (Date.now() < deadline) {
      const list = await loadProjections();
      const p = list && list.find((x) => x.name === name);
      if (!p) return undefined;
      if (p.state === "live" && p.version >= target) {
        return say("projections-status", `${name} rebuilt: version ${p.version}, live, ${p.lag_events} events behind.`);
      }
      if (p.state === "failed") {
        return say("projections-status", `${name} failed at ${p.error.position}: ${p.error.message}`, true);
      }
      await sleep(POLL_MS);
    }
    return say("projections-status", `${name} is still rebuilding; refresh to follow it.`, true);
  }

  // ---- key audit -----------------------------------------------------------------------------

  async function loadAudit(id) {
    const answer = await api("GET", `/admin/key-audit/${enc(id)}`);
    if (!answer.ok) return say("audit-status", answer.message, true);
    const rows = answer.body.accesses.map((a) => el("tr", {},
      cell(time(a.at)), cell(a.who), cell(a.how), cell(mono(a.ip)), cell(a.user_agent), numCell(a.version)));
    fill($("audit-table").tBodies[0], rows, "No reads of this order's keys.", 6);
    return say("audit-status", `${rows.length} reads of order ${id}.`);
  }

  async function auditSection(id) {
    if (!id) return undefined;
    $("audit-filter").elements.order_id.value = id;
    return loadAudit(id);
  }

  // ---- navigation ----------------------------------------------------------------------------

  const LOADERS = {
    dashboard: loadDashboard,
    orders: ordersSection,
    reservations: () => loadReservations(null),
    webhooks: webhooksSection,
    projections: loadProjections,
    audit: auditSection,
  };

  function parseHash() {
    const [name, arg] = window.location.hash.slice(1).split("/");
    const section = SECTIONS.includes(name) ? name : "dashboard";
    return { section, arg: arg ? decodeURIComponent(arg) : null };
  }

  async function route(moveFocus) {
    const { section, arg } = parseHash();
    for (const name of SECTIONS) $(name).hidden = name !== section;
    for (const link of document.querySelectorAll("nav a")) {
      if (link.getAttribute("href") === `#${section}`) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    const heading = $(`${section}-h`);
    document.title = `${heading.textContent} · BitLoot admin`;
    if (moveFocus && !arg) heading.focus();
    await LOADERS[section](arg);
    if (moveFocus && arg) {
      const detailHeading = { orders: "order-h", webhooks: "webhook-h" }[section];
      if (detailHeading) $(detailHeading).focus();
    }
  }

  function wire() {
    window.addEventListener("hashchange", () => route(true));
    $("dashboard-refresh").addEventListener("click", loadDashboard);
    $("projections-refresh").addEventListener("click", loadProjections);
    $("order-retry").addEventListener("click", retryOrder);
    $("webhook-replay").addEventListener("click", () => shownDelivery && replay(shownDelivery));
    $("audit-filter").addEventListener("submit", (event) => {
      event.preventDefault();
      const id = event.target.elements.order_id.value.trim();
      const target = `#audit/${enc(id)}`;
      if (window.location.hash === target) loadAudit(id);
      else window.location.hash = target;
    });
    for (const [detail, back] of [["order-detail", "#orders"], ["webhook-detail", "#webhooks"]]) {
      $(detail).addEventListener("keydown", (event) => {
        if (event.key === "Escape") window.location.hash = back;
      });
    }
    route(false);
  }

  wire();
})();
