// The console's "Needs attention" queue: every order that waits for a person, with the action
// each needs in place (accept a moved supplier cost, retry, resume a held purchase, resolve a
// flagged payment, finish or abandon a key return, refund), each confirmed with the amounts
// involved.
import { ORDER_ACTIONS, money, orderView } from "./actions.js";
import { el, enc, cell, numCell, badge, hidden, time, say, api, pagedList, confirmed } from "./blocks.js";

const KINDS = {
  price_changed: "Kinguin's price moved",
  failed: "Fulfilment failed",
  returning: "Key return under way or interrupted",
  held: "Held for the supplier's balance",
  flagged: "Payment flagged",
};

/** What accepting the new cost means for each line: the new cost, the sale price, the margin. */
function newCostText(o) {
  const lines = o.items.map((item) => {
    const cost = o.new_costs[item.product_id];
    if (cost === null || cost === undefined) return `${item.product_id}: no longer offered`;
    const margin = (Number(item.unit_price) - Number(cost)).toFixed(2);
    return `${item.product_id} × ${item.quantity}: ${money(cost, o.currency)} a key, sold at ${money(item.unit_price, o.currency)} (margin ${money(margin, o.currency)} a key)`;
  });
  return `Buy order ${o.id} again at Kinguin's new cost. ${lines.join("; ")}.`;
}

/** The queue's actions, in the order their buttons stand: accepting a moved cost (its own
 * confirmation, from the order's new costs), then the order's actions it may need. */
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
  retry: queued("Retry", "retry", (row) => row.kind === "failed"),
  resume: queued("Resume purchase", "resume"),
  resolve: queued("Resolve", "resolve_flags"),
  finish: queued("Finish return", "finish_return"),
  abandon: queued("Abandon return", "abandon_return"),
  refund: queued("Refund", "refund"),
};

/** One of the order's actions as a button of the queue, offered where the domain allows it
 * (and ``also`` holds). */
function queued(label, name, also = () => true) {
  const action = ORDER_ACTIONS[name];
  return {
    ...action,
    label,
    allowed: (row) => row.actions[name] === null && also(row),
    ask: async (row) => action.ask(orderView(row)),
  };
}

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
      numCell(money(row.total, row.currency)),
      cell(time(row.updated_at)),
      actionsCell(row));
    tr.dataset.order = row.order_id;
    return tr;
  }, 6);
  return load;
}
