// The live one-token explorer (Streamlit custom component v2, no iframe). tokenmath.js, svg.js and
// frames.js are prepended to this file, so VLMath and the drawing helpers are in scope. Python sends the
// scenario, the slider limits, the theme's colours and the core's region labels in `data`; everything on
// screen is recomputed here on every animation frame while a handle moves, and the state goes back to
// Python when the handle is released (or 350 ms after the last key press), which then updates the
// URL-bound sliders and the page.
const KEYS = ["v", "v_old", "R", "eps"];
const KEY_SETTLE_MS = 350;
const MAP_RES = 200;
const LOSS_H = 300, GRAD_H = 190;
const M = { left: 52, right: 14, top: 24, bottom: 34 };

// Round to the sliders' step and read the number back as the URL does (0.3, not 0.30000000000000004).
function snap(x, step, lo, hi) {
  const n = Math.min(hi, Math.max(lo, Math.round(x / step) * step));
  const decimals = Math.max(0, Math.ceil(-Math.log10(step) - 1e-9));
  return parseFloat(n.toFixed(decimals));
}

class Explorer {
  constructor(root) {
    this.root = root;
    this.frames = []; // {script: ms of JS + layout per frame, t: frame start}
    this.pending = false;
    this.drag = null;
    this.keyTimer = null;
    this.build();
    this.resizeObserver = new ResizeObserver(() => this.layout());
    this.resizeObserver.observe(this.box);
  }

  // ---- data from Python --------------------------------------------------------------------
  update(args) {
    this.args = args;
    const d = args.data;
    this.cfg = d;
    this.server = { ...d.state };
    const busy = this.drag || this.keyTimer;
    if (!busy || !this.live) {
      this.live = { ...d.state };
      this.frozenRange = null;
    }
    this.mapKey = null;
    this.curveLegend.replaceChildren();
    for (const [key, label] of [["unclipped", "(v − R)² unclipped"], ["clipped", "(clip(v) − R)² clipped"], ["max", "max: the loss"], ["v_old", "v_old"], ["R", "R"]]) {
      const item = el("span", {}, this.curveLegend);
      const style = { solid: "solid", dash: "dashed", dot: "dotted", dashdot: "dashed", longdash: "dashed" }[d.dashes[key]] || "solid";
      el("span", { class: "vl-line-swatch", style: `border-top:${Math.min(4, d.widths[key] || 2)}px ${style} ${d.colors[key]}` }, item);
      item.append(label);
    }
    for (const [label, fill] of [["trust band v_old ± ε", d.fills.band], ["zero gradient", d.fills.zero_grad]]) {
      const item = el("span", {}, this.curveLegend);
      el("span", { class: "vl-swatch", style: `background:${fill}` }, item);
      item.append(label);
    }
    this.mapLegend.replaceChildren();
    for (const [code, label] of Object.entries(d.labels)) {
      if (Number(code) === VLMath.NAN) continue;
      const item = el("span", {}, this.mapLegend);
      el("span", { class: "vl-swatch", style: `background:${d.regionColors[code]}` }, item);
      item.append(label);
    }
    this.layout();
  }

  send() {
    const s = this.live;
    const changed = KEYS.some((k) => s[k] !== this.server[k]);
    this.frozenRange = null;
    const payload = releasePayload(s, KEYS);
    if (changed && this.args && payload) {
      this.releasedAt = performance.now();
      this.args.setTriggerValue("release", payload);
    }
    this.schedule();
  }

  // ---- DOM ---------------------------------------------------------------------------------
  build() {
    const box = (this.box = el("div", { class: "vl-live" }, this.root));
    const metrics = el("div", { class: "vl-metrics" }, box);
    this.metric = {};
    for (const [key, label] of [
      ["unclipped", "Unclipped (v − R)²"],
      ["clipped", "Clipped (clip(v) − R)²"],
      ["winner", "max() picks"],
      ["grad", "Gradient d max/dv"],
    ]) {
      const m = el("div", { class: "vl-metric", "data-metric": key }, metrics);
      el("div", { class: "vl-metric-label" }, m).textContent = label;
      this.metric[key] = { value: el("div", { class: "vl-metric-value" }, m), sub: el("div", { class: "vl-metric-sub" }, m) };
    }
    this.regionBox = el("div", { class: "vl-region", "data-testid": "vl-region" }, box);
    this.regionLabel = el("b", {}, this.regionBox);
    this.regionWhy = el("span", { class: "vl-why" }, this.regionBox);
    this.equation = el("div", { class: "vl-equation", "data-testid": "vl-equation", role: "math" }, box);

    const plots = el("div", { class: "vl-plots" }, box);
    const left = el("div", { class: "vl-left" }, plots);
    this.help = el("div", { class: "vl-help" }, left);
    this.help.textContent =
      "Drag the dots: v on the black curve, v_old (diamond, bottom), R (triangle, top), the band edges (|). " +
      "Or focus one with Tab and use the arrow keys (Shift: ×10). Click the plot to move v there.";
    this.curveLegend = el("div", { class: "vl-curve-legend" }, left);
    this.lossSvg = svgEl("svg", { class: "vl-svg", "data-testid": "vl-loss", role: "group", "aria-label": "Loss of one token as a function of v" }, left);
    this.gradSvg = svgEl("svg", { class: "vl-svg", "data-testid": "vl-grad", role: "img", "aria-label": "Gradient d max/dv as a function of v" }, left);
    const right = el("div", { class: "vl-right" }, plots);
    el("div", { class: "vl-map-title" }, right).textContent = "Region map: Δ = v − v_old across, R − v_old up";
    const mapWrap = el("div", { class: "vl-map" }, right);
    this.canvas = el("canvas", { width: MAP_RES, height: MAP_RES, "aria-hidden": "true" }, mapWrap);
    this.mapSvg = svgEl("svg", { class: "vl-map-svg", "data-testid": "vl-map", role: "img" }, mapWrap);
    this.mapLegend = el("div", { class: "vl-map-legend" }, right);
    this.announce = el("div", { class: "vl-sr", "aria-live": "polite", "data-testid": "vl-announce" }, box);

    this.lossFrame = svgEl("g", {}, this.lossSvg);
    this.lossLayer = svgEl("g", {}, this.lossSvg);
    this.gradFrame = svgEl("g", {}, this.gradSvg);
    this.gradLayer = svgEl("g", {}, this.gradSvg);
    this.mapLayer = svgEl("g", {}, this.mapSvg);
    this.handleLayer = svgEl("g", {}, this.lossSvg);
    this.handles = {};
    const handleSpec = {
      v: "v: current prediction",
      v_old: "v_old: old value",
      R: "R: return target",
      eps_lo: "ε: clip range (lower band edge)",
      eps_hi: "ε: clip range (upper band edge)",
    };
    for (const [name, label] of Object.entries(handleSpec)) {
      const g = svgEl("g", { class: "vl-handle", tabindex: "0", role: "slider", "aria-label": label, "data-handle": name }, this.handleLayer);
      g.addEventListener("pointerdown", (e) => this.startDrag(e, name));
      g.addEventListener("keydown", (e) => this.onKey(e, name));
      this.handles[name] = g;
    }
    this.lossSvg.addEventListener("pointerdown", (e) => {
      if (e.target.closest && e.target.closest(".vl-handle")) return;
      this.startDrag(e, "v", true);
    });
    this.onMove = (e) => this.moveDrag(e);
    this.onUp = (e) => this.endDrag(e);
  }

  // ---- interaction -------------------------------------------------------------------------
  valueFromX(clientX) {
    const r = this.lossSvg.getBoundingClientRect();
    return this.x.invert(clientX - r.left);
  }

  setFromHandle(name, x) {
    const lim = this.cfg.limits;
    const s = this.live;
    if (name === "eps_lo" || name === "eps_hi") s.eps = snap(Math.abs(x - s.v_old), lim.step, lim.eps[0], lim.eps[1]);
    else s[name] = snap(x, lim.step, lim.value[0], lim.value[1]);
  }

  startDrag(e, name, jump) {
    if (!this.x || e.button > 0) return;
    e.preventDefault();
    this.frozenRange = this.range; // the axes hold still under the pointer
    this.drag = { name, id: e.pointerId };
    try { this.lossSvg.setPointerCapture(e.pointerId); } catch (_) { /* synthetic pointer */ }
    this.lossSvg.addEventListener("pointermove", this.onMove);
    this.lossSvg.addEventListener("pointerup", this.onUp);
    this.lossSvg.addEventListener("pointercancel", this.onUp);
    (this.handles[name] || this.handles.v).focus({ preventScroll: true });
    if (jump) this.moveDrag(e);
  }

  moveDrag(e) {
    if (!this.drag) return;
    this.setFromHandle(this.drag.name, this.valueFromX(e.clientX));
    this.schedule();
  }

  endDrag() {
    if (!this.drag) return;
    this.lossSvg.removeEventListener("pointermove", this.onMove);
    this.lossSvg.removeEventListener("pointerup", this.onUp);
    this.lossSvg.removeEventListener("pointercancel", this.onUp);
    this.drag = null;
    this.send();
  }

  onKey(e, name) {
    const lim = this.cfg.limits;
    const isEps = name.startsWith("eps");
    const key = isEps ? "eps" : name;
    const [lo, hi] = isEps ? lim.eps : lim.value;
    const big = e.shiftKey ? 10 : 1;
    const sign = name === "eps_lo" ? -1 : 1; // the lower edge moves outward to the left
    let next = this.live[key];
    switch (e.key) {
      case "ArrowRight": case "ArrowUp": next += sign * lim.step * big; break;
      case "ArrowLeft": case "ArrowDown": next -= sign * lim.step * big; break;
      case "PageUp": next += lim.step * 10; break;
      case "PageDown": next -= lim.step * 10; break;
      case "Home": next = lo; break;
      case "End": next = hi; break;
      default: return;
    }
    e.preventDefault();
    this.live[key] = snap(next, lim.step, lo, hi);
    this.frozenRange = this.frozenRange || this.range;
    clearTimeout(this.keyTimer);
    this.keyTimer = setTimeout(() => { this.keyTimer = null; this.send(); }, KEY_SETTLE_MS);
    this.schedule();
  }

  schedule() {
    scheduleRender(this);
  }

  layout() {
    const width = this.lossSvg.parentElement ? this.lossSvg.parentElement.clientWidth : 0;
    this.width = Math.max(260, width || 600);
    this.mapSize = Math.max(180, Math.min(360, this.canvas.parentElement.clientWidth || 300));
    this.schedule();
  }

  // ---- drawing -----------------------------------------------------------------------------
  render() {
    if (!this.cfg) return;
    const s = this.live, cfg = this.cfg, conv = s.conv;
    const t = VLMath.terms(s.v, s.R, s.v_old, s.eps, conv);
    this.range = this.frozenRange || VLMath.viewRange(s.v_old, s.R, s.eps, s.v);
    const [lo, hi] = this.range;
    const W = this.width;
    const x = (this.x = linear(lo, hi, M.left, W - M.right));
    const curve = this.sample(lo, hi, Math.max(200, Math.min(700, Math.round(W))));
    this.drawLoss(curve, t, x, W);
    this.drawGrad(curve, t, x, W);
    this.drawMap(t);
    this.drawReadout(t);
  }

  sample(lo, hi, n) {
    const s = this.live;
    const special = [s.v_old - s.eps, s.v_old + s.eps, s.R, 2 * s.R - (s.v_old + s.eps), 2 * s.R - (s.v_old - s.eps), s.v];
    const xs = [];
    for (let i = 0; i < n; i++) xs.push(lo + ((hi - lo) * i) / (n - 1));
    for (const p of special) if (p >= lo && p <= hi) xs.push(p);
    xs.sort((a, b) => a - b);
    const out = { v: [], lu: [], lc: [], lm: [], region: [], grad: [] };
    let prev = NaN;
    for (const v of xs) {
      if (v === prev) continue;
      prev = v;
      const t = VLMath.terms(v, s.R, s.v_old, s.eps, s.conv);
      out.v.push(v); out.lu.push(t.lossUnclipped); out.lc.push(t.lossClipped); out.lm.push(t.lossMax);
      out.region.push(t.region); out.grad.push(t.grad);
    }
    return out;
  }

  spans(c, code) {
    const out = [];
    let start = null;
    for (let i = 0; i < c.v.length; i++) {
      if (c.region[i] === code) { if (start === null) start = c.v[i]; }
      else if (start !== null) { out.push([start, c.v[i - 1]]); start = null; }
    }
    if (start !== null) out.push([start, c.v[c.v.length - 1]]);
    return out;
  }

  // Axes, grid and titles: rebuilt only when the scales change (not while v alone is dragged).
  frame(layer, W, H, x, y, yTicks, title, yTitle) {
    const key = [W, H, x.lo, x.hi, y.lo, y.hi].join("|");
    if (layer.dataset.key === key) return;
    layer.dataset.key = key;
    layer.replaceChildren();
    const x0 = M.left, x1 = W - M.right, y0 = M.top, y1 = H - M.bottom;
    panelFrame(layer, x0, x1, y, yTicks, title, yTitle);
    for (const tk of niceTicks(x.lo, x.hi, Math.max(3, Math.round(W / 110)))) {
      svgEl("line", { x1: x(tk), x2: x(tk), y1: y0, y2: y1, class: "vl-grid" }, layer);
      svgEl("text", { x: x(tk), y: y1 + 15, class: "vl-tick", "text-anchor": "middle" }, layer).textContent = VLMath.fmt(tk);
    }
    svgEl("text", { x: x1, y: H - 4, class: "vl-axis", "text-anchor": "end" }, layer).textContent = "v";
  }

  path(xs, ys, x, y, breaks) {
    let d = "", pen = false;
    for (let i = 0; i < xs.length; i++) {
      const yy = ys[i];
      if (!Number.isFinite(yy) || (breaks && breaks(i))) { pen = false; if (!Number.isFinite(yy)) continue; }
      d += (pen ? "L" : "M") + x(xs[i]).toFixed(1) + "," + y(yy).toFixed(1);
      pen = true;
    }
    return d;
  }

  drawLoss(c, t, x, W) {
    const s = this.live, col = this.cfg.colors, H = LOSS_H;
    let top = 0;
    for (const m of c.lm) if (Number.isFinite(m) && m > top) top = m;
    top = top > 0 ? top : 1;
    const y = linear(-0.04 * top, 1.15 * top, H - M.bottom, M.top);
    this.lossSvg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    this.lossSvg.setAttribute("width", W);
    this.lossSvg.setAttribute("height", H);
    const L = this.lossLayer;
    L.replaceChildren();
    this.frame(this.lossFrame, W, H, x, y, niceTicks(0, 1.15 * top, 4), "Loss of one token as a function of v", "loss term");
    const clipX = (v) => Math.min(W - M.right, Math.max(M.left, x(v)));
    const rect = (a, b, fill, cls) => svgEl("rect", { x: clipX(a), y: M.top, width: Math.max(0, clipX(b) - clipX(a)), height: H - M.top - M.bottom, fill, class: cls }, L);
    rect(s.v_old - s.eps, s.v_old + s.eps, this.cfg.fills.band, "vl-band");
    for (const [a, b] of this.spans(c, VLMath.ZERO_GRAD)) rect(a, b, this.cfg.fills.zero_grad, "vl-zero");
    for (const [key, at] of [["v_old", s.v_old], ["R", s.R]]) {
      if (at < x.lo || at > x.hi) continue;
      svgEl("line", { x1: x(at), x2: x(at), y1: M.top, y2: H - M.bottom, stroke: col[key], "stroke-width": this.cfg.widths[key], "stroke-dasharray": DASH[this.cfg.dashes[key]] }, L);
    }
    const line = (ys, key, extra) =>
      svgEl("path", { d: this.path(c.v, ys, x, y), fill: "none", stroke: col[key], "stroke-width": this.cfg.widths[key], "stroke-dasharray": DASH[this.cfg.dashes[key]] || "", ...extra }, L);
    line(c.lu, "unclipped", { "data-curve": "unclipped" });
    line(c.lc, "clipped", { "data-curve": "clipped" });
    line(c.lm, "max", { "data-curve": "max", opacity: 0.85 });

    // handles
    const lim = this.cfg.limits;
    const place = (name, cx, cy, shape, color, value, vmin, vmax, text) => {
      const g = this.handles[name];
      const visible = cx >= M.left - 1 && cx <= W - M.right + 1;
      g.style.display = visible ? "" : "none";
      g.setAttribute("transform", `translate(${cx.toFixed(1)},${cy.toFixed(1)})`);
      if (!g.firstChild || g.dataset.shape !== shape) {
        g.replaceChildren();
        g.dataset.shape = shape;
        svgEl("rect", { x: -14, y: -14, width: 28, height: 28, class: "vl-hit" }, g);
        if (shape === "circle") svgEl("circle", { r: 7 }, g);
        else if (shape === "diamond") svgEl("path", { d: "M0,-9L8,0L0,9L-8,0Z" }, g);
        else if (shape === "triangle") svgEl("path", { d: "M0,9L8,-6L-8,-6Z" }, g);
        else svgEl("rect", { x: -3, y: -12, width: 6, height: 24, rx: 2 }, g);
      }
      g.firstChild.nextSibling.setAttribute("fill", color);
      g.setAttribute("aria-valuemin", vmin);
      g.setAttribute("aria-valuemax", vmax);
      g.setAttribute("aria-valuenow", value);
      g.setAttribute("aria-valuetext", text);
    };
    const f = VLMath.fmt;
    const lm = Number.isFinite(t.lossMax) ? t.lossMax : 0;
    place("v", x(s.v), y(lm), "circle", col.current, s.v, lim.value[0], lim.value[1],
      `v = ${f(s.v)}; loss ${f(0.5 * t.lossMax)}, gradient ${f(t.grad)}, ${this.cfg.labels[t.region]}`);
    place("v_old", x(s.v_old), H - M.bottom, "diamond", col.v_old, s.v_old, lim.value[0], lim.value[1], `v_old = ${f(s.v_old)}`);
    place("R", x(s.R), M.top, "triangle", col.R, s.R, lim.value[0], lim.value[1], `R = ${f(s.R)}`);
    const midY = M.top + 0.55 * (H - M.top - M.bottom);
    place("eps_lo", x(s.v_old - s.eps), midY, "bar", col.band, s.eps, lim.eps[0], lim.eps[1], `ε = ${f(s.eps)}, lower band edge ${f(s.v_old - s.eps)}`);
    place("eps_hi", x(s.v_old + s.eps), midY, "bar", col.band, s.eps, lim.eps[0], lim.eps[1], `ε = ${f(s.eps)}, upper band edge ${f(s.v_old + s.eps)}`);
  }

  drawGrad(c, t, x, W) {
    const s = this.live, col = this.cfg.colors, H = GRAD_H;
    let top = 0;
    for (const g of c.grad) if (Number.isFinite(g) && Math.abs(g) > top) top = Math.abs(g);
    top = top > 0 ? 1.15 * top : 1;
    const y = linear(-top, top, H - M.bottom, M.top);
    this.gradSvg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    this.gradSvg.setAttribute("width", W);
    this.gradSvg.setAttribute("height", H);
    const L = this.gradLayer;
    L.replaceChildren();
    this.frame(this.gradFrame, W, H, x, y, niceTicks(-top, top, 4), "Gradient d max/dv (before verl's ½)", "d max/dv");
    for (const [a, b] of this.spans(c, VLMath.ZERO_GRAD)) {
      const x0 = Math.max(M.left, x(a)), x1 = Math.min(W - M.right, x(b));
      svgEl("rect", { x: x0, y: M.top, width: Math.max(0, x1 - x0), height: H - M.top - M.bottom, fill: this.cfg.fills.zero_grad, class: "vl-zero" }, L);
    }
    svgEl("line", { x1: M.left, x2: W - M.right, y1: y(0), y2: y(0), class: "vl-zero-line" }, L);
    // break the curve where the region changes (the gradient jumps there); ties are drawn as markers
    const isTie = (i) => c.region[i] === VLMath.TIE;
    const breaks = (i) => i > 0 && (c.region[i] !== c.region[i - 1] || isTie(i) || isTie(i - 1));
    const ys = c.grad.map((g, i) => (isTie(i) ? NaN : g));
    svgEl("path", { d: this.path(c.v, ys, x, y, breaks), fill: "none", stroke: col.max, "stroke-width": 2.5, "data-curve": "grad" }, L);
    for (let i = 0; i < c.v.length; i++) {
      if (!isTie(i) || !Number.isFinite(c.grad[i])) continue;
      svgEl("path", { d: `M${x(c.v[i]) - 5},${y(c.grad[i]) - 5}l10,10m0,-10l-10,10`, stroke: "#333", "stroke-width": 2, class: "vl-tie" }, L);
    }
    if (Number.isFinite(t.grad)) svgEl("circle", { cx: x(s.v), cy: y(t.grad), r: 6, fill: col.current, "data-point": "grad" }, L);
  }

  drawMap(t) {
    const s = this.live, conv = s.conv;
    // the map's scale holds still while a handle moves (like the curves' axis), and follows on release
    const fit = VLMath.niceCeil(Math.max(3 * s.eps, 1.15 * Math.abs(s.v - s.v_old), 1.15 * Math.abs(s.R - s.v_old), 0.5));
    const hw = this.frozenRange && this.mapHalfWidth ? Math.max(this.mapHalfWidth, VLMath.niceCeil(3 * s.eps)) : fit;
    // 100 x 100 while a handle moves (every pixel still the core's region at its centre), 200 x 200 at rest
    const res = this.frozenRange ? MAP_RES / 2 : MAP_RES;
    const key = `${s.eps}|${conv}|${hw}|${res}`;
    if (key !== this.mapKey) {
      this.mapKey = key;
      if (this.canvas.width !== res) { this.canvas.width = res; this.canvas.height = res; }
      const ctx = this.canvas.getContext("2d");
      const img = ctx.createImageData(res, res);
      const rgb = {};
      for (const [code, hex] of Object.entries(this.cfg.regionColors)) rgb[code] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
      const cell = {};
      for (let j = 0; j < res; j++) {
        const gap = hw - (2 * hw * j) / (res - 1); // row 0 is the top
        for (let i = 0; i < res; i++) {
          const delta = -hw + (2 * hw * i) / (res - 1);
          const c = rgb[VLMath.termsInto(cell, delta, gap, 0, s.eps, conv).region];
          const o = 4 * (j * res + i);
          img.data[o] = c[0]; img.data[o + 1] = c[1]; img.data[o + 2] = c[2]; img.data[o + 3] = 215;
        }
      }
      ctx.putImageData(img, 0, 0);
      this.mapHalfWidth = hw;
    }
    const size = this.mapSize || 300;
    const L = this.mapLayer;
    L.replaceChildren();
    const toX = (d) => ((d + hw) / (2 * hw)) * size, toY = (g) => ((hw - g) / (2 * hw)) * size;
    for (const e of [-s.eps, s.eps]) svgEl("line", { x1: toX(e), x2: toX(e), y1: 0, y2: size, class: "vl-map-edge" }, L);
    svgEl("line", { x1: 0, x2: size, y1: toY(0), y2: toY(0), class: "vl-map-axis" }, L);
    svgEl("line", { x1: toX(0), x2: toX(0), y1: 0, y2: size, class: "vl-map-axis" }, L);
    for (const [text, xx, yy, anchor] of [[VLMath.fmt(-hw), 3, size - 4, "start"], [VLMath.fmt(hw), size - 3, size - 4, "end"], [VLMath.fmt(hw), toX(0) + 3, 12, "start"]])
      svgEl("text", { x: xx, y: yy, class: "vl-tick", "text-anchor": anchor }, L).textContent = text;
    const d = s.v - s.v_old, g = s.R - s.v_old;
    svgEl("circle", { cx: toX(d), cy: toY(g), r: 7, fill: this.cfg.colors.current, stroke: "#fff", "stroke-width": 2, "data-point": "map", "data-delta": d, "data-gap": g }, L);
    this.mapSvg.setAttribute("viewBox", `0 0 ${size} ${size}`);
    this.mapSvg.setAttribute("aria-label", `Region map; this token: Δ = ${VLMath.fmt(d)}, R − v_old = ${VLMath.fmt(g)}, ${this.cfg.labels[t.region]}`);
  }

  drawReadout(t) {
    const s = this.live, f = VLMath.fmt, cfg = this.cfg;
    const winner = t.lossClipped > t.lossUnclipped ? "clipped" : t.lossUnclipped > t.lossClipped ? "unclipped" : "both equal";
    const unclippedGrad = 2 * (s.v - s.R);
    this.metric.unclipped.value.textContent = f(t.lossUnclipped);
    this.metric.unclipped.sub.textContent = `v − R = ${f(s.v - s.R)}`;
    this.metric.clipped.value.textContent = f(t.lossClipped);
    this.metric.clipped.sub.textContent = `clip(v) = ${f(t.vClipped)}`;
    this.metric.winner.value.textContent = winner;
    this.metric.winner.sub.textContent = `max = ${f(t.lossMax)}; verl's ½·max = ${f(0.5 * t.lossMax)}`;
    this.metric.grad.value.textContent = f(t.grad);
    this.metric.grad.sub.textContent = `verl's ½: ${f(0.5 * t.grad)}; unclipped 2(v − R) = ${f(unclippedGrad)}`;
    this.regionBox.style.borderLeftColor = cfg.regionColors[t.region] || cfg.colors.neutral;
    this.regionBox.dataset.region = t.region;
    this.regionLabel.textContent = `Region: ${cfg.labels[t.region]}. `;
    const atServer = KEYS.every((k) => s[k] === this.server[k]) && s.conv === this.server.conv;
    this.regionWhy.textContent = atServer ? cfg.why : "(release to read why)";
    this.equation.replaceChildren(...equationLines(s, t, cfg, winner));
    const summary = `${cfg.labels[t.region]}; loss ${f(0.5 * t.lossMax)}; gradient ${f(t.grad)}`;
    if (!this.drag && this.announce.textContent !== summary) this.announce.textContent = summary;
    this.box.dataset.v = s.v; this.box.dataset.vOld = s.v_old; this.box.dataset.r = s.R; this.box.dataset.eps = s.eps;
    this.box.dataset.region = t.region;
  }
}

// The filled-in equation, built like valueloss/teach/explain.py equation_latex (same lines, same numbers).
function equationLines(s, t, cfg, winner) {
  const f = VLMath.fmt;
  const p = (v) => (f(v).startsWith("\u2212") ? `(${f(v)})` : f(v));
  const span = (cls, text, color) => {
    const n = document.createElement("span");
    n.className = cls;
    if (color) n.style.color = color;
    n.textContent = text;
    return n;
  };
  // A line wraps only before an " = ": each "= ..." stretch is one unbreakable chunk.
  const line = (...parts) => {
    const d = document.createElement("div");
    d.className = "vl-eq-line";
    let chunk = null;
    const open = () => { chunk = document.createElement("span"); chunk.className = "vl-eq-chunk"; d.append(chunk); };
    open();
    for (const part of parts) {
      if (typeof part !== "string") { chunk.append(part); continue; }
      part.split(/(?= = )/).forEach((piece, i) => {
        if (i > 0 || (piece.startsWith(" = ") && chunk.childNodes.length)) { d.append(" "); open(); }
        chunk.append(document.createTextNode(i > 0 || piece.startsWith(" = ") ? piece.slice(1) : piece));
      });
    }
    return d;
  };
  const c = cfg.colors;
  const lo = s.v_old - s.eps, hi = s.v_old + s.eps;
  const old = () => span("", f(s.v_old), c.v_old), eps = () => span("", f(s.eps), c.band);
  const unVal = span("vl-eq-term", f(t.lossUnclipped), c.unclipped);
  const clVal = span("vl-eq-term", f(t.lossClipped), c.clipped);
  if (winner === "clipped") clVal.classList.add("vl-wins");
  else if (winner === "unclipped" && t.region !== VLMath.INSIDE) unVal.classList.add("vl-wins");
  const lines = [
    line("clip(v) = clip(", f(s.v), ", [", old(), " − ", eps(), ", ", old(), " + ", eps(), "]) = clip(", f(s.v), ", [", f(lo), ", ", f(hi), "]) = ", span("vl-eq-b", f(t.vClipped))),
    line("L = ½ max(", span("", "(v − R)²", c.unclipped), ", ", span("", "(clip(v) − R)²", c.clipped), ") = ½ max(",
      span("", `(${f(s.v)} − ${p(s.R)})²`, c.unclipped), ", ", span("", `(${f(t.vClipped)} − ${p(s.R)})²`, c.clipped), ")"),
    line(" = ½ max(", unVal, ", ", clVal, ") = ", span("vl-eq-b", f(0.5 * t.lossMax), c.max)),
  ];
  const ug = 2 * (s.v - s.R);
  let g;
  if (t.region === VLMath.ZERO_GRAD) g = line("∂max/∂v = ∂/∂v (", f(t.vClipped), " − ", p(s.R), ")² = ", span("vl-eq-b", "0", c.zero_grad), "  (clip(v) is constant in v)");
  else if (t.region === VLMath.INSIDE || t.region === VLMath.AWAY || t.region === VLMath.OVERSHOT)
    g = line("∂max/∂v = 2(v − R) = 2(", f(s.v), " − ", p(s.R), ") = ", span("vl-eq-b", f(t.grad)));
  else if (t.region === VLMath.TIE && ug !== 0) g = line("∂max/∂v = ", f(t.grad / ug), " · 2(v − R) = ", span("vl-eq-b", f(t.grad)), "  (exact tie)");
  else g = line("∂max/∂v = ", span("vl-eq-b", f(t.grad)));
  lines.push(g);
  return lines;
}

export default function (component) {
  const { parentElement } = component;
  let ex = parentElement.__vlExplorer;
  if (!ex) {
    ex = parentElement.__vlExplorer = new Explorer(parentElement);
    window.__vlLive = ex; // the browser tests read frame times and state from here
  }
  ex.update(component);
  // Unmounted: take the drawing away with the instance, or a later mount on this element would add a second one.
  return () => {
    ex.resizeObserver.disconnect();
    ex.box.remove();
    delete parentElement.__vlExplorer;
  };
}
