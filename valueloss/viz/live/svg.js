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
