// Drawing helpers shared by the app's own SVG components (the live explorer, the moving wall, the training
// logs): plain script (no import/export), prepended to each component's module after tokenmath.js, whose number
// format they use.
const SVGNS = "http://www.w3.org/2000/svg";

function el(tag, attrs, parent, ns) {
  const node = ns ? document.createElementNS(SVGNS, tag) : document.createElement(tag);
  for (const [k, val] of Object.entries(attrs || {})) node.setAttribute(k, val);
  if (parent) parent.appendChild(node);
  return node;
}
const svgEl = (tag, attrs, parent) => el(tag, attrs, parent, true);
const DASH = { solid: "", dash: "7 4", dot: "2 3", dashdot: "7 3 2 3", longdash: "11 4" };

function niceTicks(lo, hi, count) {
  const step = VLMath.niceCeil((hi - lo) / count);
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  return out;
}

// A panel's frame between x0 and x1, over y's range (y.lo .. y.hi): its background, a grid line and a label at
// each y tick, its title above it and its y axis title turned up along the drawing's left edge.
function panelFrame(layer, x0, x1, y, yTicks, title, yTitle) {
  const top = y(y.hi), bottom = y(y.lo), mid = (top + bottom) / 2;
  svgEl("rect", { x: x0, y: top, width: x1 - x0, height: bottom - top, class: "vl-plot-bg" }, layer);
  for (const tk of yTicks) {
    svgEl("line", { x1: x0, x2: x1, y1: y(tk), y2: y(tk), class: "vl-grid" }, layer);
    svgEl("text", { x: x0 - 5, y: y(tk) + 4, class: "vl-tick", "text-anchor": "end" }, layer).textContent = VLMath.fmt(tk);
  }
  if (title) svgEl("text", { x: x0, y: top - 8, class: "vl-title" }, layer).textContent = title;
  if (yTitle) svgEl("text", { x: 12, y: mid, class: "vl-axis", transform: `rotate(-90 12 ${mid})`, "text-anchor": "middle" }, layer).textContent = yTitle;
}

// Critic dynamics' update axis under a stack of panels: a dotted line per new rollout on each panel (rollouts
// starting at the states `starts`), and tick labels and the axis title under the last one.
function rolloutLines(layer, x, starts, top, bottom) {
  for (const s of starts) svgEl("line", { x1: x(s), x2: x(s), y1: top, y2: bottom, class: "vl-rollout" }, layer);
}

function updateAxis(layer, x, nStates, bottom) {
  const [x0, x1] = [x(-0.5), x(nStates - 0.5)];
  for (const tk of niceTicks(0, nStates - 1, Math.max(2, Math.round((x1 - x0) / 90)))) {
    svgEl("text", { x: x(tk), y: bottom + 16, class: "vl-tick", "text-anchor": "middle" }, layer).textContent = VLMath.fmt(tk);
  }
  svgEl("text", { x: x1, y: bottom + 29, class: "vl-axis", "text-anchor": "end" }, layer).textContent = "update";
}

function linear(d0, d1, r0, r1) {
  const k = (r1 - r0) / (d1 - d0);
  const f = (v) => r0 + (v - d0) * k;
  f.invert = (p) => d0 + (p - r0) / k;
  f.lo = Math.min(d0, d1);
  f.hi = Math.max(d0, d1);
  return f;
}

// Paths through (x(i), y(ys[i])): an "hv" step path (each value holds until the next state, as the band and
// v_old do within a rollout) and a straight one. A value y cannot place (null, NaN, ≤ 0 on a log axis) breaks the line.
function stepPath(ys, x, y) {
  let d = "", pen = false;
  for (let i = 0; i < ys.length; i++) {
    const py = y(ys[i]);
    if (!Number.isFinite(py)) { pen = false; continue; }
    d += pen ? `H${x(i).toFixed(1)}V${py.toFixed(1)}` : `M${x(i).toFixed(1)},${py.toFixed(1)}`;
    pen = true;
  }
  return d;
}

// The band between two step edges: along the upper edge, down at the last state, back along the lower one.
function bandPath(lo, hi, x, y) {
  const n = lo.length;
  if (!n || ![...lo, ...hi].every(Number.isFinite)) return "";
  let d = stepPath(hi, x, y) + `V${y(lo[n - 1]).toFixed(1)}`;
  for (let j = n - 1; j > 0; j--) d += `V${y(lo[j - 1]).toFixed(1)}H${x(j - 1).toFixed(1)}`;
  return d + "Z";
}

function linePath(ys, x, y) {
  let d = "", pen = false;
  for (let i = 0; i < ys.length; i++) {
    const py = y(ys[i]);
    if (!Number.isFinite(py)) { pen = false; continue; }
    d += (pen ? "L" : "M") + x(i).toFixed(1) + "," + py.toFixed(1);
    pen = true;
  }
  return d;
}
