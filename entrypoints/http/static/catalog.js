// The console's catalog: every product with its cost, price, margin and stock (a page sorted by
// any of them), and the margin rules, previewed on that page before they are saved.
import { $, el, cell, numCell, mono, fill, say, api, confirmed } from "./blocks.js";

const COLUMNS = 8;
const NUMERIC = new Set(["cost", "sale_price", "margin", "qty", "preview_price", "preview_margin"]);
const state = { items: [], cursor: null, next: null, sort: null, descending: false };

/** An amount with at least two decimals, never rounded (a cost of "1.0" shows as 1.00). */
function money(text) {
  if (text === null || text === undefined) return text;
  const [whole, fraction = ""] = String(text).split(".");
  return `${whole}.${fraction.padEnd(2, "0")}`;
}

function row(p) {
  const changed = p.preview_price !== undefined && p.preview_price !== p.sale_price;
  const tr = el("tr", {},
    el("td", {}, p.name, el("br"), mono(p.product_id)),
    cell(p.platform),
    numCell(money(p.cost)),
    numCell(money(p.sale_price)),
    numCell(money(p.margin)),
    numCell(p.qty),
    cell(p.preview_price === undefined ? "" : (money(p.preview_price) ?? "not for sale"), { class: changed ? "num changed" : "num" }),
    numCell(money(p.preview_margin)));
  tr.dataset.product = p.product_id;
  return tr;
}

function value(item, key) {
  const raw = item[key];
  if (NUMERIC.has(key)) return raw === null || raw === undefined ? -Infinity : Number(raw);
  return String(raw ?? "").toLowerCase();
}

function draw() {
  const items = [...state.items];
  if (state.sort) {
    const sign = state.descending ? -1 : 1;
    items.sort((a, b) => (value(a, state.sort) > value(b, state.sort) ? sign : value(a, state.sort) < value(b, state.sort) ? -sign : 0));
  }
  for (const button of document.querySelectorAll("#catalog-table th button")) {
    const th = button.closest("th");
    if (button.dataset.sort === state.sort) th.setAttribute("aria-sort", state.descending ? "descending" : "ascending");
    else th.removeAttribute("aria-sort");
  }
  fill($("catalog-table").tBodies[0], items.map(row), "No products.", COLUMNS);
  $("catalog-next").disabled = !state.next;
  $("catalog-first").disabled = !state.cursor;
}

/** The rules as the form holds them (``PUT /admin/pricing``'s body). */
function rulesFromForm() {
  const form = $("pricing-form");
  const overrides = {};
  for (const line of form.elements.overrides.value.split("\n")) {
    const [product, price] = line.trim().split(/\s+/);
    if (product && price) overrides[product] = price;
  }
  return {
    margin_percent: form.elements.margin_percent.value,
    minimum_margin: form.elements.minimum_margin.value,
    rounding: form.elements.rounding.value.trim() || null,
    overrides,
  };
}

async function load(cursor, previewing) {
  const params = { q: $("catalog-q").value, limit: 50, cursor: cursor || "" };
  say("catalog-status", "Loading…");
  const answer = previewing
    ? await api("POST", "/admin/pricing/preview", params, rulesFromForm())
    : await api("GET", "/admin/catalog", params);
  if (!answer.ok) return say("catalog-status", answer.message, true);
  Object.assign(state, { items: answer.body.items, cursor, next: answer.body.next_cursor });
  draw();
  if (!previewing) {
    const sync = answer.body.last_sync;
    const last = sync ? `last sync ${sync.finished_at.slice(0, 19).replace("T", " ")} UTC, ${sync.seen} seen` : "no sync yet";
    return say("catalog-status", `${state.items.length} products shown; ${last}.`);
  }
  const changes = state.items.filter((p) => p.preview_price !== p.sale_price).length;
  return say("catalog-status", `Preview: ${changes} of the ${state.items.length} products shown would change price. Nothing is saved yet.`);
}

async function loadRules() {
  const answer = await api("GET", "/admin/pricing");
  if (!answer.ok) return say("pricing-status", answer.message, true);
  const form = $("pricing-form");
  const rules = answer.body;
  form.elements.margin_percent.value = rules.margin_percent;
  form.elements.minimum_margin.value = rules.minimum_margin;
  form.elements.rounding.value = rules.rounding ?? "";
  form.elements.overrides.value = Object.entries(rules.overrides).map(([p, price]) => `${p} ${price}`).join("\n");
  return undefined;
}

async function save() {
  const rules = rulesFromForm();
  const fixed = Object.keys(rules.overrides).length;
  const ending = rules.rounding ? `rounded up to ${rules.rounding}` : "to the cent";
  const text = `Set the margin to ${rules.margin_percent} % (at least ${rules.minimum_margin} EUR), ${ending}, with ${fixed} fixed price(s). Every product is repriced now.`;
  if (!(await confirmed(text))) return undefined;
  const answer = await api("PUT", "/admin/pricing", {}, rules);
  if (!answer.ok) return say("pricing-status", answer.message, true);
  await load(null, false);
  return say("pricing-status", `Saved: ${answer.body.repriced} product(s) repriced.`);
}

/** Sync with Kinguin now (what changed since the last sync), then show the first page again. */
async function syncNow() {
  const button = $("catalog-sync");
  button.disabled = true;
  say("catalog-status", "Syncing with Kinguin…");
  const answer = await api("POST", "/admin/catalog/sync");
  button.disabled = false;
  if (!answer.ok) return say("catalog-status", answer.message, true);
  await load(null, false);
  const { mode, seen, changed } = answer.body;
  return say("catalog-status", `Synced (${mode}): ${seen} product(s) read from Kinguin, ${changed} changed.`);
}

/** Show the section: the rules in force and the first page of the catalog. */
export async function catalogSection() {
  await loadRules();
  return load(null, false);
}

/** Wire the section's controls once. */
export function wireCatalog() {
  $("catalog-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    load(null, false);
  });
  $("catalog-next").addEventListener("click", () => load(state.next, false));
  $("catalog-first").addEventListener("click", () => load(null, false));
  for (const button of document.querySelectorAll("#catalog-table th button")) {
    button.addEventListener("click", () => {
      const key = button.dataset.sort;
      state.descending = state.sort === key ? !state.descending : false;
      state.sort = key;
      draw();
    });
  }
  $("pricing-form").addEventListener("submit", (event) => {
    event.preventDefault();
    load(state.cursor, true);
  });
  $("pricing-save").addEventListener("click", save);
  $("catalog-sync").addEventListener("click", syncNow);
}
