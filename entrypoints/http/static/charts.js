// The dashboard's charts: small line charts drawn as SVG elements (createElementNS, text as text
// nodes), each with its figures in a table a screen reader or a keyboard can read.
import { el } from "./blocks.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 560;
const HEIGHT = 180;
const PAD = { left: 58, right: 12, top: 12, bottom: 26 };

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

/** A period's label (UTC): "Dec 6" by day; "14:00" by hour on the axis, "Dec 6 14:00" in full. */
export function periodLabel(iso, by, full) {
  const at = new Date(iso);
  const day = at.toLocaleDateString("en", { month: "short", day: "numeric", timeZone: "UTC" });
  if (by !== "hour") return day;
  const hour = `${String(at.getUTCHours()).padStart(2, "0")}:00`;
  return full ? `${day} ${hour}` : hour;
}

/** The scale's top: the largest value rounded up to 1, 2 or 5 times a power of ten. */
function niceMax(values) {
  const top = Math.max(0, ...values.filter((v) => v !== null && Number.isFinite(v)));
  if (top === 0) return 1;
  const power = 10 ** Math.floor(Math.log10(top));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= top);
}

/**
 * A line chart: `lines` are {label, cls, values} with one value per point (null: no figure);
 * `format` turns a value into its label. Returns a <figure> with the SVG and a data table.
 */
export function lineChart({ id, title, points, by, lines, format }) {
  const max = niceMax(lines.flatMap((line) => line.values));
  const innerW = WIDTH - PAD.left - PAD.right;
  const innerH = HEIGHT - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (points.length < 2 ? innerW / 2 : (i * innerW) / (points.length - 1));
  const y = (v) => PAD.top + innerH - (v / max) * innerH;
  const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-labelledby": `${id}-title`, class: "chart" },
    svg("title", { id: `${id}-title` }, title));
  for (const level of [0, 0.5, 1]) {
    chart.append(
      svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(max * level), y2: y(max * level), class: "grid" }),
      svg("text", { x: PAD.left - 6, y: y(max * level) + 4, "text-anchor": "end", class: "tick" }, format(max * level)),
    );
  }
  const marks = [[0, "start"], [Math.floor((points.length - 1) / 2), "middle"], [points.length - 1, "end"]];
  for (const [i, anchor] of points.length ? marks : []) {
    chart.append(svg("text", { x: x(i), y: HEIGHT - 6, "text-anchor": anchor, class: "tick" }, periodLabel(points[i].at, by)));
  }
  for (const line of lines) {
    const drawn = line.values.map((v, i) => (v === null ? null : `${x(i).toFixed(1)},${y(v).toFixed(1)}`)).filter(Boolean);
    if (drawn.length) chart.append(svg("polyline", { points: drawn.join(" "), class: `series ${line.cls}` }));
    if (drawn.length === 1) {
      const [cx, cy] = drawn[0].split(",");
      chart.append(svg("circle", { cx, cy, r: 3, class: `dot ${line.cls}` }));
    }
  }
  const legend = el("ul", { class: "legend" }, ...lines.map((line) => el("li", { class: line.cls }, line.label)));
  return el("figure", { class: "card chart-card", id },
    el("figcaption", {}, el("h2", {}, title)), chart, legend, dataTable(points, by, lines, format));
}

/** The chart's figures as a table, folded away under a summary. */
function dataTable(points, by, lines, format) {
  const head = el("tr", {}, el("th", { scope: "col" }, by === "hour" ? "Hour (UTC)" : "Day (UTC)"),
    ...lines.map((line) => el("th", { scope: "col", class: "num" }, line.label)));
  const rows = points.map((point, i) => el("tr", {}, el("th", { scope: "row" }, periodLabel(point.at, by, true)),
    ...lines.map((line) => el("td", { class: "num" }, line.values[i] === null ? "—" : format(line.values[i])))));
  return el("details", {}, el("summary", {}, "Figures"),
    el("div", { class: "scroll" }, el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows))));
}
