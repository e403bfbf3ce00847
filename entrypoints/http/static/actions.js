// What an admin may do to an order: the route each action posts to, whether it takes a note,
// and the confirmation it asks for, with the amounts involved. The order's page and the
// needs-attention queue both ask with these words (``orderView`` reads either's order).

/** An amount and its currency, as the console shows money. */
export const money = (amount, currency) => `${amount} ${String(currency || "eur").toUpperCase()}`;

/** An order as the confirmations read it, from the order's page (GET /admin/orders/{id}) or a
 * row of a list (GET /admin/attention). */
export function orderView(o) {
  return {
    id: o.id || o.order_id,
    status: o.status,
    total: money(o.total, o.currency),
    refund: money(o.refund_amount, o.currency),
    keys: o.key_count,
    email: o.email || "the customer",
    flags: Array.isArray(o.flags) ? o.flags.join("; ") : o.flags || "",
  };
}

/** Keyed by the names of the API's ``actions`` (GET /admin/orders/{id}). */
export const ORDER_ACTIONS = {
  refund: {
    path: "refund",
    ask: (o) => `Refund order ${o.id}: ${o.refund} goes back to the customer. The order becomes refunded.`,
  },
  return_keys: {
    path: "return-keys",
    ask: (o) => `Return the ${o.keys} key(s) of order ${o.id} to Kinguin, destroy our copies and refund ${o.refund} to the customer.`,
  },
  shred: {
    path: "shred",
    ask: (o) => `Destroy the keys of order ${o.id} for good: the customer can no longer read its ${o.keys} key(s). Nothing is refunded.`,
  },
  retry: {
    path: "retry",
    ask: (o) => `Send order ${o.id} (${o.total}) back to be bought or delivered again.`,
  },
  resend_email: {
    path: "resend-email",
    ask: (o) => `Send the delivery e-mail of order ${o.id} again to ${o.email}, with a new link to its ${o.keys} key(s), valid for 15 minutes.`,
  },
  resume: {
    path: "resume",
    ask: (o) => `Try buying the keys of order ${o.id} (${o.total}) from Kinguin again now, after topping up the Kinguin balance. If it still does not cover the purchase, the order waits again.`,
  },
  resolve_flags: {
    path: "resolve-flags",
    note: "note",
    required: true,
    ask: (o) => `Clear the payment flags of order ${o.id}, ${o.status}, total ${o.total}: ${o.flags}. Say how the payment was settled.`,
  },
  finish_return: {
    path: "finish-return",
    ask: (o) => `Finish returning the ${o.keys} key(s) of order ${o.id} to Kinguin: our copies are destroyed and ${o.refund} is refunded to the customer.`,
  },
  abandon_return: {
    path: "abandon-return",
    note: "reason",
    ask: (o) => `Give up returning the keys of order ${o.id}: the customer keeps its ${o.keys} key(s) and nothing is refunded.`,
  },
};
