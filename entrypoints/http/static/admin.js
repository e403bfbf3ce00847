// BitLoot operator console: plain JavaScript modules over the JSON admin API, no framework, no
// build step (blocks.js: the DOM helpers and the API client; live.js: the /ws/admin feed).
// Every value from the API reaches the page as text (textContent / append of strings), never as
// HTML. The session is an HttpOnly cookie; state-changing calls add X-Requested-With (CSRF).
import {
  $, enc, sleep, el, hidden, dash, cell, numCell, mono, badge, time, fill, fields, say, api, pagedList,
  confirmed,
} from "./blocks.js";
import { ORDER_ACTIONS, orderView } from "./actions.js";
import { makeAttention } from "./attention.js";
import { catalogSection, wireCatalog } from "./catalog.js";
import { makeDashboard } from "./dashboard.js";
import { follow } from "./live.js";

(() => {
  const SECTIONS = [
    "dashboard", "attention", "orders", "catalog", "reservations", "webhooks", "projections", "audit",
  ];
  const STATUSES = [
    "created", "pending_payment", "paid", "reserved", "fulfilled",
    "underpaid", "payment_failed", "fulfillment_failed", "refunded",
  ];
  const POLL_MS = 300;
  const REBUILD_TIMEOUT_MS = 10 * 60 * 1000;
  const orderLink = (id) => (id ? el("a", { href: `#orders/${enc(id)}`, class: "mono" }, id) : "—");

  // ---- dashboard -----------------------------------------------------------------------------

  const loadDashboard = makeDashboard(STATUSES);

  // ---- orders --------------------------------------------------------------------------------

  /** The date fields as the API's times: from the start of the first day to the end of the last (UTC). */
  function orderSearch(params) {
    const day = 24 * 60 * 60 * 1000;
    if (params.created_from) params.created_after = `${params.created_from}T00:00:00Z`;
    if (params.created_to) {
      params.created_before = new Date(Date.parse(`${params.created_to}T00:00:00Z`) + day).toISOString();
    }
    delete params.created_from;
    delete params.created_to;
  }

  const loadOrders = pagedList("orders", "/admin/orders", (o) => el("tr", {},
    el("td", {}, orderLink(o.order_id)),
    cell(o.owner),
    cell(badge(o.status)),
    numCell(`${o.total} ${String(o.currency || "").toUpperCase()}`),
    cell(o.failure_reason),
    cell(o.flags),
    cell(o.supplier_status),
    cell(time(o.updated_at)),
  ), 8, orderSearch);

  function timelineItem(event) {
    const summary = el("summary", {},
      el("span", { class: "version" }, `v${event.version}`), " ",
      el("strong", {}, event.type), " ", time(event.timestamp));
    return el("li", {}, el("details", {}, summary, el("pre", {}, JSON.stringify(event.data, null, 2))));
  }

  let shownOrder = null;

  /** Enable each action the domain allows; say why the others are not. An action only some
   * orders ever need (resume, resolve, finish or abandon a return) is shown only when allowed. */
  function showActions(o) {
    const hints = [];
    for (const button of document.querySelectorAll("#order-detail [data-action]")) {
      const why = o.actions[button.dataset.action];
      button.disabled = why !== null;
      button.hidden = why !== null && "situational" in button.dataset;
      if (why && !button.hidden) hints.push(el("li", {}, `${button.textContent}: ${why}.`));
    }
    $("order-action-hints").replaceChildren(...hints);
  }

  let shownDetail = null;

  /** An order's page; a live redraw (`quiet`) leaves its status line as it is. */
  async function showOrder(id, quiet = false) {
    const detail = $("order-detail");
    shownOrder = id;
    detail.hidden = false;
    $("order-h").textContent = `Order ${id}`;
    $("order-audit").setAttribute("href", `#audit/${enc(id)}`);
    if (!quiet) $("order-supplier-view").textContent = "";
    const evidence = $("order-evidence");
    evidence.setAttribute("href", `/orders/${enc(id)}/evidence`);
    evidence.setAttribute("download", `evidence-${id}.json`);
    const [order, history] = await Promise.all([
      api("GET", `/admin/orders/${enc(id)}`),
      api("GET", `/orders/${enc(id)}/history`),
    ]);
    if (!order.ok) return say("order-status", order.message, true);
    const o = order.body;
    shownDetail = o;
    const placed = history.ok && history.body.length ? history.body[0].data : {};
    fields($("order-fields"), [
      ["Status", badge(o.status)], ["Version", o.version], ["Owner", placed.owner], ["E-mail", o.email],
      ["Total", `${o.total} ${String(o.currency).toUpperCase()}`], ["Refundable", `${o.refund_amount} ${String(o.currency).toUpperCase()}`],
      ["Invoice", o.invoice_id], ["Payment", o.payment_id], ["Kinguin order", o.supplier_order_id], ["Keys", o.key_count],
      ["Failure", o.failure_reason], ["Flags", (o.flags || []).join("; ")], ["Held", o.held],
      ["Key return", o.returning ? "under way" : ""], ["Created", time(o.created_at)], ["Updated", time(o.updated_at)],
    ]);
    showActions(o);
    $("order-timeline").replaceChildren(...(history.ok ? history.body.map(timelineItem) : []));
    if (quiet && history.ok) return undefined;
    return say("order-status", history.ok ? `${history.body.length} events.` : history.message, !history.ok);
  }

  async function act(name) {
    const o = shownDetail;
    const action = ORDER_ACTIONS[name];
    const body = o ? await confirmed(action.ask(orderView(o)), action.note || null, Boolean(action.required)) : null;
    if (body === null) return undefined;
    const answer = await api("POST", `/admin/orders/${enc(o.id)}/${action.path}`, null, action.note ? body : undefined);
    if (!answer.ok) return say("order-status", answer.message, true);
    await showOrder(o.id);
    return say("order-status", `Done: the order is now ${answer.body.status}.`);
  }

  /** Kinguin's own view of the order's purchase: a live call, so only when asked. */
  async function askKinguin() {
    const id = shownOrder;
    const view = $("order-supplier-view");
    view.textContent = "Asking Kinguin…";
    const answer = await api("GET", `/kinguin/status/${enc(id)}`);
    if (id !== shownOrder) return;
    view.classList.toggle("error", !answer.ok);
    view.textContent = answer.ok
      ? `Kinguin order ${answer.body.supplier_order_id} (external id ${answer.body.order_external_id}): ${answer.body.status}.`
      : answer.message;
  }

  async function ordersSection(id) {
    await loadOrders(null);
    if (id) return showOrder(id);
    $("order-detail").hidden = true;
    shownOrder = null;
    return undefined;
  }

  const loadAttention = makeAttention();

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
    attention: () => loadAttention(null),
    orders: ordersSection,
    catalog: catalogSection,
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
    wireCatalog();
    $("dashboard-refresh").addEventListener("click", loadDashboard);
    $("order-supplier").addEventListener("click", askKinguin);
    for (const choice of document.querySelectorAll('input[name="dash-by"]')) choice.addEventListener("change", loadDashboard);
    $("projections-refresh").addEventListener("click", loadProjections);
    for (const button of document.querySelectorAll("#order-detail [data-action]")) {
      button.addEventListener("click", () => act(button.dataset.action));
    }
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
    follow($("live"), refreshSoon);
  }

  // ---- live updates ----------------------------------------------------------------------------

  let pending = null;
  const touched = { orders: new Set(), projections: false };

  /** Redraw what the changes touch, at most twice a second however many arrive. */
  function refreshSoon(change) {
    if (change.order_id) touched.orders.add(change.order_id);
    if (change.projection) touched.projections = true;
    if (pending) return;
    pending = setTimeout(async () => {
      pending = null;
      const orders = new Set(touched.orders);
      const projections = touched.projections;
      touched.orders.clear();
      touched.projections = false;
      const { section } = parseHash();
      if (section === "dashboard") await loadDashboard();
      if (section === "projections" && projections) await loadProjections();
      if (section === "orders" && orders.size) {
        if (loadOrders.onFirstPage()) await loadOrders(null, true);
        if (orders.has(shownOrder)) await showOrder(shownOrder, true);
      }
      if (section === "reservations" && orders.size && loadReservations.onFirstPage()) await loadReservations(null, true);
      if (section === "attention" && orders.size && loadAttention.onFirstPage()) await loadAttention(null, true);
    }, 500);
  }

  wire();
})();
