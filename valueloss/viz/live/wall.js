// The moving wall of the Critic dynamics page (Streamlit custom component v2, no iframe). tokenmath.js
// (number format), svg.js and frames.js are prepended. Python sends one simulated run
// (valueloss/viz/dynamics.py wall_data): three tracked tokens' v_old, R and v at every state of the run.
// This file only draws those numbers: on the left each token against its band v_old ± eps at the current
// update ("now"), on the right each token's whole run; Play / Pause, a slider and dragging on the history
// move the current update, which the training logs (logs.js) follow. Nothing goes back to Python, so a page
// re-run costs one small SVG, not a Plotly animation of every update.
const PANEL_H = 150, PANEL_GAP = 30, NOW_H_NARROW = 280, SIDE_BY_SIDE = 620;
const PM = { left: 46, right: 12, top: 26, bottom: 30 };

// Marker shapes of valueloss/notation.py SYMBOLS, as SVG paths centred on (x, y) with radius r.
const SHAPES = {
  circle: (x, y, r) => `M${x - r},${y}a${r},${r} 0 1,0 ${2 * r},0a${r},${r} 0 1,0 ${-2 * r},0Z`,
  diamond: (x, y, r) => `M${x},${y - r}L${x + r},${y}L${x},${y + r}L${x - r},${y}Z`,
  star: (x, y, r) => {
    let d = "";
    for (let i = 0; i < 10; i++) {
      const a = -Math.PI / 2 + (i * Math.PI) / 5, rr = i % 2 ? 0.45 * r : r;
      d += (i ? "L" : "M") + (x + rr * Math.cos(a)).toFixed(1) + "," + (y + rr * Math.sin(a)).toFixed(1);
    }
    return d + "Z";
  },
};

class Wall {
  constructor(root) {
    this.root = root;
    this.frames = []; // {t, script}: what each drawn frame cost (frames.js), read by the browser tests
    this.pending = false;
    this.timer = null;
    this.u = 0;
    this.size = null;
    this.build();
    this.resizeObserver = new ResizeObserver(() => { this.size = null; this.schedule(); });
    this.resizeObserver.observe(this.box);
    // The training logs (logs.js) draw their cursor at the update shown here, and a press on them moves it.
    this.onSeek = (e) => {
      if (!this.d || e.detail.revision !== this.d.revision) return;
      this.pause();
      this.seek(e.detail.u);
    };
    window.addEventListener("vl-seek", this.onSeek);
  }

  build() {
    const box = (this.box = el("div", { class: "vl-wall", "data-testid": "vl-wall" }, this.root));
    this.legend = el("div", { class: "vl-curve-legend" }, box);
    const plots = el("div", { class: "vl-wall-plots" }, box);
    this.nowSvg = svgEl("svg", { class: "vl-svg", "data-testid": "vl-wall-now", role: "img" }, plots);
    this.histSvg = svgEl("svg", { class: "vl-svg vl-wall-history", "data-testid": "vl-wall-history", role: "img" }, plots);
    this.nowStatic = svgEl("g", {}, this.nowSvg);
    this.nowLayer = svgEl("g", {}, this.nowSvg);
    this.histStatic = svgEl("g", {}, this.histSvg);
    this.histLayer = svgEl("g", {}, this.histSvg);
    const controls = el("div", { class: "vl-wall-controls" }, box);
    this.playButton = el("button", { type: "button", class: "vl-wall-button", "data-testid": "vl-wall-play" }, controls);
    this.slider = el("input", { type: "range", min: "0", step: "1", value: "0", class: "vl-wall-slider", "aria-label": "update shown" }, controls);
    this.label = el("div", { class: "vl-wall-label", "data-testid": "vl-wall-label" }, controls);
    const tableBox = el("div", { class: "vl-wall-table" }, box);
    this.readout = el("table", { "data-testid": "vl-wall-readout" }, tableBox);

    this.playButton.addEventListener("click", () => (this.timer ? this.pause() : this.play()));
    this.slider.addEventListener("input", () => { this.pause(); this.seek(Number(this.slider.value)); });
    this.histSvg.addEventListener("pointerdown", (e) => {
      if (e.button > 0 || !this.x) return;
      this.pause();
      try { this.histSvg.setPointerCapture(e.pointerId); } catch (_) { /* synthetic pointer */ }
      this.scrubbing = true;
      this.scrub(e);
    });
    this.histSvg.addEventListener("pointermove", (e) => { if (this.scrubbing) this.scrub(e); });
    for (const end of ["pointerup", "pointercancel"]) this.histSvg.addEventListener(end, () => { this.scrubbing = false; });
  }

  // ---- data from Python --------------------------------------------------------------------
  update(args) {
    const d = args.data;
    const same = this.d && this.d.revision === d.revision;
    this.d = d;
    this.n = d.labels.length;
    this.box.dataset.revision = d.revision; // which run is drawn: the browser tests wait for it
    if (!same) {
      this.pause();
      this.u = 0;
      this.size = null;
    }
    this.slider.max = String(this.n - 1);
    this.nowSvg.setAttribute("aria-label", `Now: each tracked token against its band v_old ± ${VLMath.fmt(d.eps)}`);
    this.histSvg.setAttribute("aria-label", "Each tracked token's whole run: band, v_old, R and v at every update");
    this.drawLegend();
    this.schedule();
  }

  schedule() { scheduleRender(this); }

  // ---- playing -----------------------------------------------------------------------------
  play() {
    if (this.u >= this.n - 1) this.seek(0);
    this.timer = setInterval(() => {
      const next = Math.min(this.n - 1, this.u + this.d.stride);
      this.seek(next);
      if (next >= this.n - 1) this.pause();
    }, this.d.frameMs);
    this.schedule();
  }

  pause() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.schedule();
  }

  seek(u) {
    this.u = Math.max(0, Math.min(this.n - 1, Math.round(u)));
    this.schedule();
  }

  scrub(e) {
    const r = this.histSvg.getBoundingClientRect();
    this.seek(this.x.invert(e.clientX - r.left));
  }

  // ---- drawing -----------------------------------------------------------------------------
  render() {
    if (!this.d) return;
    const W = Math.floor(this.box.clientWidth);
    if (W <= 0) return;
    if (!this.size || this.size.W !== W) this.layout(W);
    this.drawNow();
    this.drawCursor();
    const d = this.d, u = this.u;
    this.playButton.textContent = this.timer ? "❚❚ Pause" : "▶ Play";
    this.slider.value = String(u);
    this.label.textContent = u === 0 ? `update 0 of ${this.n - 1}: start` : `update ${u} of ${this.n - 1}: ${d.labels[u]}`;
    this.box.dataset.state = String(u);
    if (this.announced !== `${d.revision}:${u}`) {
      this.announced = `${d.revision}:${u}`;
      window.dispatchEvent(new CustomEvent("vl-update", { detail: { revision: d.revision, u } }));
    }
    this.box.dataset.playing = this.timer ? "true" : "false";
    this.drawReadout();
  }

  layout(W) {
    const d = this.d, k = d.tokens.length;
    const histH = PM.top + k * PANEL_H + (k - 1) * PANEL_GAP + PM.bottom;
    const side = W >= SIDE_BY_SIDE;
    const nowW = side ? Math.round(0.36 * W) : W;
    const histW = side ? W - nowW - 16 : W;
    const nowH = side ? histH : NOW_H_NARROW;
    this.size = { W, nowW, nowH, histW, histH };
    for (const [svg, w, h] of [[this.nowSvg, nowW, nowH], [this.histSvg, histW, histH]]) {
      svg.setAttribute("width", w);
      svg.setAttribute("height", h);
      svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    }
    this.yNow = linear(d.yRange[0], d.yRange[1], nowH - PM.bottom, PM.top);
    this.lane = linear(-0.5, k - 0.5, PM.left, nowW - PM.right);
    this.x = linear(-0.5, this.n - 0.5, PM.left, histW - PM.right);
    this.panelY = d.tokens.map((_, i) => {
      const top = PM.top + i * (PANEL_H + PANEL_GAP);
      return linear(d.yRange[0], d.yRange[1], top + PANEL_H, top);
    });
    this.drawNowFrame();
    this.drawHistory();
  }

  yTicks(y) { return niceTicks(y.lo, y.hi, Math.max(2, Math.round(Math.abs(y(y.lo) - y(y.hi)) / 45))); }

  drawNowFrame() {
    const { nowW, nowH } = this.size, y = this.yNow, L = this.nowStatic, d = this.d;
    L.replaceChildren();
    panelFrame(L, PM.left, nowW - PM.right, y, this.yTicks(y), "now", "value");
    d.tokens.forEach((t, i) => {
      svgEl("text", { x: this.lane(i), y: nowH - PM.bottom + 16, class: "vl-tick", "text-anchor": "middle" }, L).textContent = `token ${t.label}`;
    });
  }

  drawHistory() {
    const { histW } = this.size, d = this.d, L = this.histStatic, x = this.x, c = d.colors, k = d.tokens.length;
    L.replaceChildren();
    d.tokens.forEach((t, i) => {
      const y = this.panelY[i], bottom = y(y.lo);
      panelFrame(L, PM.left, histW - PM.right, y, this.yTicks(y), t.title);
      rolloutLines(L, x, d.rolloutStarts, y(y.hi), bottom);
      const lo = t.vOld.map((v) => v - d.eps), hi = t.vOld.map((v) => v + d.eps);
      svgEl("path", { d: bandPath(lo, hi, x, y), fill: d.fills.band, stroke: "none", "data-line": "band" }, L);
      for (const edge of [lo, hi]) {
        svgEl("path", { d: stepPath(edge, x, y), fill: "none", stroke: c.band, "stroke-width": d.widths.band_edge, "stroke-dasharray": DASH[d.dashes.band_edge] || "" }, L);
      }
      for (const key of ["v_old", "R"]) {
        svgEl("path", { d: stepPath(key === "R" ? t.R : t.vOld, x, y), fill: "none", stroke: c[key], "stroke-width": d.widths[key], "stroke-dasharray": DASH[d.dashes[key]] || "", "data-line": key }, L);
      }
      svgEl("path", { d: linePath(t.v, x, y), fill: "none", stroke: c.max, "stroke-width": 2, "data-line": "v" }, L);
      let dots = "";
      for (const s of t.frozenStates) if (Number.isFinite(t.v[s])) dots += SHAPES.circle(+x(s).toFixed(1), +y(t.v[s]).toFixed(1), 2.6);
      svgEl("path", { d: dots, fill: c.zero_grad, "data-line": "frozen" }, L);
      if (i === k - 1) updateAxis(L, x, this.n, bottom);
    });
  }

  drawNow() {
    const d = this.d, u = this.u, y = this.yNow, L = this.nowLayer, c = d.colors;
    L.replaceChildren();
    const half = Math.min(0.25 * Math.abs(this.lane(1) - this.lane(0) || 80), 40);
    d.tokens.forEach((t, i) => {
      const cx = this.lane(i), vOld = t.vOld[u];
      const top = y(vOld + d.eps), bottom = y(vOld - d.eps);
      svgEl("rect", { x: cx - half, y: top, width: 2 * half, height: Math.max(0, bottom - top), fill: d.fills.band, stroke: c.band, "stroke-width": 1, "data-mark": "band" }, L);
      svgEl("line", { x1: cx - 1.4 * half, x2: cx + 1.4 * half, y1: y(t.true), y2: y(t.true), stroke: c.neutral, "stroke-width": 2, "data-mark": "true" }, L);
      const mark = (shape, at, r, fill, name) =>
        svgEl("path", { d: SHAPES[shape](cx, y(at), r), fill, stroke: "#fff", "stroke-width": 1, "data-mark": name }, L);
      mark(d.symbols.v_old, vOld, 6.5, c.v_old, "v_old");
      mark(d.symbols.R, t.R[u], 8.5, c.R, "R");
      mark(d.symbols.current, t.v[u], 7, t.frozenNow[u] ? c.zero_grad : c.current, "v");
    });
  }

  drawCursor() {
    const u = this.u, x = this.x, L = this.histLayer, d = this.d;
    L.replaceChildren();
    d.tokens.forEach((t, i) => {
      const y = this.panelY[i];
      svgEl("line", { x1: x(u), x2: x(u), y1: y(y.hi), y2: y(y.lo), class: "vl-cursor" }, L);
      if (Number.isFinite(t.v[u])) {
        svgEl("path", { d: SHAPES.circle(x(u), y(t.v[u]), 5.5), fill: t.frozenNow[u] ? d.colors.zero_grad : d.colors.current, stroke: "#fff", "stroke-width": 1 }, L);
      }
    });
  }

  drawReadout() {
    const d = this.d, u = this.u, f = VLMath.fmt;
    const rows = [["token", "v_old", "R", "v", "v − v_old", "own gradient"]];
    for (const t of d.tokens) {
      const step = t.v[u] - t.vOld[u];
      rows.push([t.label, f(t.vOld[u]), f(t.R[u]), f(t.v[u]), f(step), t.frozenNow[u] ? "0" : "≠ 0"]);
    }
    this.readout.replaceChildren();
    rows.forEach((cells, r) => {
      const tr = el("tr", {}, this.readout);
      for (const text of cells) el(r ? "td" : "th", {}, tr).textContent = text;
    });
  }

  drawLegend() {
    const d = this.d, c = d.colors;
    this.legend.replaceChildren();
    const icon = (draw) => {
      const s = svgEl("svg", { width: 22, height: 14, class: "vl-legend-icon", "aria-hidden": "true" }, null);
      draw(s);
      return s;
    };
    const items = [
      ["band v_old ± eps", (s) => svgEl("rect", { x: 4, y: 1, width: 14, height: 12, fill: d.fills.band, stroke: c.band }, s)],
      ["v_old (this rollout)", (s) => svgEl("path", { d: SHAPES[d.symbols.v_old](11, 7, 5.5), fill: c.v_old }, s)],
      ["R (noisy target)", (s) => svgEl("path", { d: SHAPES[d.symbols.R](11, 7, 6.5), fill: c.R }, s)],
      ["true value", (s) => svgEl("line", { x1: 2, x2: 20, y1: 7, y2: 7, stroke: c.neutral, "stroke-width": 2 }, s)],
      ["v", (s) => svgEl("path", { d: SHAPES.circle(11, 7, 5), fill: c.current }, s)],
      ["v, own gradient 0 now", (s) => svgEl("path", { d: SHAPES.circle(11, 7, 5), fill: c.zero_grad }, s)],
      ["after an update made with its own gradient 0", (s) => svgEl("path", { d: SHAPES.circle(11, 7, 2.6), fill: c.zero_grad }, s)],
      ["new rollout", (s) => svgEl("line", { x1: 11, x2: 11, y1: 0, y2: 14, class: "vl-rollout" }, s)],
    ];
    for (const [label, draw] of items) {
      const item = el("span", {}, this.legend);
      item.append(icon(draw), label);
    }
  }
}

export default function (component) {
  const { parentElement } = component;
  let wall = parentElement.__vlWall;
  if (!wall) {
    wall = parentElement.__vlWall = new Wall(parentElement);
    window.__vlWall = wall; // the browser tests read the frame times and the state from here
  }
  wall.update(component);
  // Unmounted: take the drawing away with the instance, or a later mount on this element would add a second one.
  return () => {
    wall.pause();
    window.removeEventListener("vl-seek", wall.onSeek);
    wall.resizeObserver.disconnect();
    wall.box.remove();
    delete parentElement.__vlWall;
  };
}
