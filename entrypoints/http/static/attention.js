// The console's "Needs attention" queue: every order that waits for a person, with the action
// each needs in place (accept a moved supplier cost, retry, resume a held purchase, resolve a
// flagged payment, finish or abandon a key return, refund), each confirmed with the amounts
// involved.
import { el, enc, cell, numCell, badge, hidden, time, say, api, pagedList, confirmed } from "./blocks.js";

const KINDS = {
  price_changed: "Kinguin's price moved",
  failed: "Fulfilment failed",
  returning: "Key return under way or interrupted",
  held: "Held for the supplier's balance",
  flagged: "Payment flagged",
};

const eur = (amount, currency) => `${amount} ${String(currency || "eur").toUpperCase()}`;

/** What accepting the new cost means for each line: the new cost, the sale price, the margin. */
function newCostText(o) {
  const lines = o.items.map((item) => {
    const cost = o.new_costs[item.product_id];
    if (cost === null || cost === undefined) return `${item.product_id}: no longer offered`;
    const margin = (Number(item.unit_price) - Number(cost)).toFixed(2);
    return `${item.product_id} × ${item.quantity}: ${eur(cost, o.currency)} a key, sold at ${eur(item.unit_price, o.currency)} (margin ${eur(margin, o.currency)} a key)`;
  });
  return `Buy order ${o.id} again at Kinguin's new cost. ${lines.join("; ")}.`;
}

const ACTIONS = {
  accept: {
    label: "Accept new cost",
    path: "retry",
    allowed: (row) => row.kind === "price_changed" && row.actions.retry === null,
    ask: async (row) => {
      const detail = await api("GET", `/admin/orders/${enc(row.order_id)}`);
      return detail.ok ? newCostText(detail.body) : null;
    },
  },
  retry: {
    label: "Retry",
    path: "retry",
    allowed: (row) => row.kind === "failed" && row.actions.retry === null,
    ask: async (row) => `Send order ${row.order_id} (${eur(row.total, row.currency)}) back to be bought or delivered again.`,
  },
  resume: {
    label: "Resume purchase",
    path: "resume",
    allowed: (row) => row.actions.resume === null,
    ask: async (row) => `Try buying the keys of order ${row.order_id} (${eur(row.total, row.currency)}) from Kinguin again now; top up the Kinguin balance first. If it still does not cover the purchase, the order waits again.`,
  },
  resolve: {
    label: "Resolve",
    path: "resolve-flags",
    note: "note",
    required: true,
    allowed: (row) => row.actions.resolve_flags === null,
    ask: async (row) => `Clear the payment flags of order ${row.order_id}, ${row.status}, total ${eur(row.total, row.currency)}: ${row.flags}. Say how the payment was settled.`,
  },
  finish: {
    label: "Finish return",
    path: "finish-return",
    allowed: (row) => row.actions.finish_return === null,
    ask: async (row) => `Finish returning the keys of order ${row.order_id} to Kinguin: our copies are destroyed and ${eur(row.refund_amount, row.currency)} is refunded to the customer.`,
  },
  abandon: {
    label: "Abandon return",
    path: "abandon-return",
    note: "reason",
    allowed: (row) => row.actions.abandon_return === null,
    ask: async (row) => `Give up returning the keys of order ${row.order_id}: the customer keeps them and nothing is refunded.`,
  },
  refund: {
    label: "Refund",
    path: "refund",
    allowed: (row) => row.actions.refund === null,
    ask: async (row) => `Refund order ${row.order_id}: ${eur(row.refund_amount, row.currency)} goes back to the customer.`,
  },
};

/** The queue's loader: a paged list whose rows carry their actions. */
export function makeAttention() {
  let load = null;

  async function act(name, row) {
    const action = ACTIONS[name];
    const text = await action.ask(row);
    if (text === null) return say("attention-status", "The order could not be read; try again.", true);
    const body = await confirmed(text, action.note || null, Boolean(action.required));
    if (body === null) return undefined;
    const answer = await api("POST", `/admin/orders/${enc(row.order_id)}/${action.path}`, null, action.note ? body : undefined);
    if (!answer.ok) return say("attention-status", answer.message, true);
    await load(null);
    return say("attention-status", `Order ${row.order_id}: ${action.label.toLowerCase()} done; it is now ${answer.body.status}.`);
  }

  function actionsCell(row) {
    const td = el("td", { class: "actions" });
    for (const [name, action] of Object.entries(ACTIONS)) {
      if (!action.allowed(row)) continue;
      td.append(el("button", { type: "button", "data-focus-key": `${name}-${row.order_id}`, onclick: () => act(name, row) },
        action.label, hidden(` order ${row.order_id}`)));
    }
    td.append(el("a", { href: `#orders/${enc(row.order_id)}` }, "Open", hidden(` order ${row.order_id}`)));
    return td;
  }

  load = pagedList("attention", "/admin/attention", (row) => {
    const tr = el("tr", {},
      el("td", {}, el("a", { href: `#orders/${enc(row.order_id)}`, class: "mono" }, row.order_id)),
      cell(badge(row.status)),
      el("td", {}, el("strong", {}, KINDS[row.kind] || row.kind), el("br"), row.failure_reason || row.flags || ""),
      numCell(eur(row.total, row.currency)),
      cell(time(row.updated_at)),
      actionsCell(row));
    tr.dataset.order = row.order_id;
    return tr;
  }, 6);
  return load;
}
