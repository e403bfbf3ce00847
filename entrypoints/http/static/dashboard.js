// The dashboard section: counts by status, all-time figures, the Kinguin balance, the
// projections' lag, and the charts of the sales read model (GET /admin/dashboard?by=hour|day).
import { $, el, cell, numCell, badge, time, fill, fields, say, api } from "./blocks.js";
import { lineChart } from "./charts.js";

const money = (v) => (Math.abs(v) >= 1000 ? `${(v / 1000).toFixed(1)}k` : v.toFixed(2));
const count = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));
const ms = (v) => (v >= 1000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`);
const percent = (v) => `${(v * 100).toFixed(v < 0.1 && v > 0 ? 1 : 0)} %`;

/** The shop's main currency: the one with the most revenue (EUR when nothing sold yet). */
function mainCurrency(data) {
  const revenue = Object.entries(data.revenue || {});
  if (!revenue.length) return "eur";
  return revenue.sort((a, b) => Number(b[1]) - Number(a[1]))[0][0];
}

function charts(data) {
  const points = data.series || [];
  const by = data.by;
  const currency = mainCurrency(data);
  const cur = currency.toUpperCase();
  const amount = (field) => points.map((p) => (currency in p[field] ? Number(p[field][currency]) : 0));
  return [
    lineChart({ id: "chart-orders", title: `Orders per ${by}`, points, by, format: count, lines: [
      { label: "placed", cls: "s1", values: points.map((p) => p.placed) },
      { label: "fulfilled", cls: "s2", values: points.map((p) => p.fulfilled) },
      { label: "failed", cls: "s3", values: points.map((p) => p.failed) },
    ] }),
    lineChart({ id: "chart-revenue", title: `Revenue and margin per ${by} (${cur})`, points, by, format: money, lines: [
      { label: `revenue, ${cur}`, cls: "s1", values: amount("revenue") },
      { label: `margin, ${cur}`, cls: "s2", values: amount("margin") },
    ] }),
    lineChart({ id: "chart-latency", title: "Paid → fulfilled", points, by, format: ms, lines: [
      { label: "median", cls: "s1", values: points.map((p) => p.latency_ms.median) },
      { label: "95th percentile", cls: "s3", values: points.map((p) => p.latency_ms.p95) },
    ] }),
    lineChart({ id: "chart-failures", title: "Failure rate (failed of settled orders)", points, by, format: percent, lines: [
      { label: "failed", cls: "s3", values: points.map((p) => p.failure_rate) },
    ] }),
    lineChart({ id: "chart-balance", title: "Kinguin balance (EUR)", points, by, format: money, lines: [
      { label: "balance, EUR", cls: "s2", values: points.map((p) => (p.balance === null ? null : Number(p.balance))) },
    ] }),
  ];
}

function totals(data) {
  const latency = data.fulfilment_latency_ms || {};
  const each = (map) => Object.entries(map || {}).map(([c, v]) => `${v} ${c.toUpperCase()}`).join(", ") || "none yet";
  fields($("dash-totals"), [
    ["revenue", each(data.revenue)],
    ["margin", each(data.margin)],
    ["failure rate", data.failure_rate === null ? "—" : percent(data.failure_rate)],
    ["paid → fulfilled, median", latency.median === null ? "—" : ms(latency.median)],
    ["paid → fulfilled, 95th percentile", latency.p95 === null ? "—" : ms(latency.p95)],
    ["orders measured", latency.count],
  ]);
  const balance = data.supplier_balance;
  fields($("dash-balance"), balance
    ? [["last seen", `${balance.eur} EUR`], ["in the hour of", time(balance.at)]]
    : [["last seen", "not yet observed"]]);
}

/** The dashboard's loader, for the chosen period ("hour" or "day"). */
export function makeDashboard(statuses) {
  return async function loadDashboard() {
    const by = document.querySelector('input[name="dash-by"]:checked')?.value || "hour";
    const answer = await api("GET", "/admin/dashboard", { by });
    if (!answer.ok) return say("dashboard-status", answer.message, true);
    const data = answer.body;
    const counts = data.orders_by_status || {};
    const known = statuses.filter((s) => s in counts).concat(Object.keys(counts).filter((s) => !statuses.includes(s)));
    fill($("dash-status").tBodies[0], known.map((status) => {
      const row = el("tr", {}, el("th", { scope: "row" }, badge(status)), numCell(counts[status]));
      row.dataset.status = status;
      return row;
    }), "No orders yet.", 2);
    totals(data);
    fill($("dash-projections").tBodies[0], (data.projections || []).map((p) =>
      el("tr", {}, el("th", { scope: "row" }, p.name), numCell(p.version), cell(badge(p.state)), numCell(p.lag_events)),
    ), "No projections.", 4);
    const open = new Set([...$("dash-charts").querySelectorAll("details[open]")].map((d) => d.closest("figure").id));
    const drawn = charts(data);
    for (const figure of drawn) if (open.has(figure.id)) figure.querySelector("details").open = true;
    $("dash-charts").replaceChildren(...drawn);
    return say("dashboard-status", `Updated ${new Date().toLocaleTimeString()}.`);
  };
}
