// The training logs of the Critic dynamics page (Streamlit custom component v2, no iframe). tokenmath.js
// (number format), svg.js and frames.js are prepended. Python sends the run's four logs
// (valueloss/viz/dynamics.py log_data); this file draws them on one shared update axis, one panel each,
// with a cursor at the moving wall's update (the wall announces it on `window` as "vl-update") and a
// readout of every line there. Pointing at a panel reads that update; pressing or dragging also moves the
// wall to it ("vl-seek"). Nothing goes back to Python.
const LOG_GAP = 34;
const LM = { left: 58, right: 12, top: 22, bottom: 32 };

// A log axis over the positive values, a quarter of a decade beyond them, with a tick at every power of ten.
function logRange(ys) {
  let lo = Infinity, hi = -Infinity;
  for (const y of ys) if (Number.isFinite(y) && y > 0) { lo = Math.min(lo, y); hi = Math.max(hi, y); }
  if (!Number.isFinite(lo)) return [-3, 0];
  if (hi / lo < 10) { lo /= 3.2; hi *= 3.2; } // at least one decade, so at least one tick
  return [Math.log10(lo) - 0.25, Math.log10(hi) + 0.25];
}

class Logs {
  constructor(root) {
    this.root = root;
    this.frames = [];
    this.pending = false;
    this.u = 0; // the wall's update
    this.hover = null; // the update under the pointer, if any
    this.size = null;
    const box = (this.box = el("div", { class: "vl-logs", "data-testid": "vl-logs" }, root));
    this.legend = el("div", { class: "vl-curve-legend" }, box);
    this.readout = el("div", { class: "vl-logs-readout", "data-testid": "vl-logs-readout" }, box);
    this.svg = svgEl("svg", { class: "vl-svg vl-logs-svg", "data-testid": "vl-logs-svg", role: "img" }, box);
    this.staticLayer = svgEl("g", {}, this.svg);
    this.cursorLayer = svgEl("g", {}, this.svg);
    this.onWall = (e) => {
      if (!this.d || e.detail.revision !== this.d.revision) return;
      this.u = e.detail.u;
      this.schedule();
    };
    window.addEventListener("vl-update", this.onWall);
    const at = (e) => {
      const r = this.svg.getBoundingClientRect();
      return Math.max(0, Math.min(this.d.labels.length - 1, Math.round(this.x.invert(e.clientX - r.left))));
    };
    const seek = (e) => {
      this.u = at(e);
      window.dispatchEvent(new CustomEvent("vl-seek", { detail: { revision: this.d.revision, u: this.u } }));
    };
    this.svg.addEventListener("pointermove", (e) => {
      if (!this.x) return;
      this.hover = at(e);
      if (this.pressed) seek(e);
      this.schedule();
    });
    this.svg.addEventListener("pointerleave", () => { this.hover = null; this.schedule(); });
    this.svg.addEventListener("pointerdown", (e) => {
      if (!this.x || e.button > 0) return;
      try { this.svg.setPointerCapture(e.pointerId); } catch (_) { /* synthetic pointer */ }
      this.pressed = true;
      seek(e);
      this.schedule();
    });
    for (const end of ["pointerup", "pointercancel"]) this.svg.addEventListener(end, () => { this.pressed = false; });
    this.resizeObserver = new ResizeObserver(() => { this.size = null; this.schedule(); });
    this.resizeObserver.observe(box);
  }

  update(args) {
    const d = args.data;
    if (!this.d || this.d.revision !== d.revision) { this.u = 0; this.hover = null; }
    this.d = d;
    this.size = null;
    this.box.dataset.revision = d.revision;
    this.svg.setAttribute("aria-label", d.panels.map((p) => p.title).join("; ") + ", against the update");
    this.legend.replaceChildren();
    for (const p of d.panels) {
      if (p.lines.length < 2) continue; // a single line is named by its panel's title
      for (const line of p.lines) {
        const item = el("span", {}, this.legend);
        el("span", { class: "vl-line-swatch", style: `border-top:${Math.min(3, line.width)}px ${line.dash === "solid" ? "solid" : "dashed"} ${line.color}` }, item);
        item.append(line.name);
      }
    }
    this.schedule();
  }

  schedule() { scheduleRender(this); }

  render() {
    if (!this.d) return;
    const W = Math.floor(this.box.clientWidth);
    if (W <= 0) return;
    if (!this.size || this.size.W !== W) this.layout(W);
    this.drawCursor();
  }

  layout(W) {
    const d = this.d, k = d.panels.length, ph = d.panelHeight;
    const H = LM.top + k * ph + (k - 1) * LOG_GAP + LM.bottom;
    this.size = { W, H };
    this.svg.setAttribute("width", W);
    this.svg.setAttribute("height", H);
    this.svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const x = (this.x = linear(-0.5, d.labels.length - 0.5, LM.left, W - LM.right));
    const L = this.staticLayer;
    L.replaceChildren();
    const defs = svgEl("defs", {}, L);
    this.ys = d.panels.map((p, i) => {
      const top = LM.top + i * (ph + LOG_GAP), bottom = top + ph;
      const all = p.lines.flatMap((line) => line.y);
      let y;
      if (p.log) {
        const [lo, hi] = logRange(all);
        const ly = linear(lo, hi, bottom, top);
        y = (v) => (v > 0 ? ly(Math.log10(v)) : NaN);
        y.lo = 10 ** lo; y.hi = 10 ** hi;
        y.ticks = [];
        for (let e = Math.ceil(lo); e <= Math.floor(hi); e++) y.ticks.push(10 ** e);
      } else {
        y = linear(p.range[0], p.range[1], bottom, top);
        y.ticks = niceTicks(p.range[0], p.range[1], 3).filter((t) => t >= p.range[0] && t <= p.range[1]);
      }
      y.top = top; y.bottom = bottom;
      panelFrame(L, LM.left, W - LM.right, y, y.ticks, p.title, p.yTitle);
      const clip = svgEl("clipPath", { id: `vl-logs-clip-${i}` }, defs);
      svgEl("rect", { x: LM.left, y: top, width: W - LM.left - LM.right, height: ph }, clip);
      rolloutLines(L, x, d.rolloutStarts, top, bottom);
      const g = svgEl("g", { "clip-path": `url(#vl-logs-clip-${i})` }, L);
      for (const line of p.lines) {
        const xs = (j) => x(line.x0 + j);
        const ys = line.y.map((v) => (v === null ? NaN : v));
        const dPath = line.step ? stepPath(ys, xs, y) : linePath(ys, xs, y);
        svgEl("path", { d: dPath, fill: "none", stroke: line.color, "stroke-width": line.width, "stroke-dasharray": DASH[line.dash] || "", "data-line": line.name }, g);
      }
      return y;
    });
    updateAxis(L, x, d.labels.length, this.ys[this.ys.length - 1].bottom);
  }

  // The value a line has at update u (lines of per-update logs start at update 1), or null.
  valueAt(line, u) {
    const j = u - line.x0;
    return j >= 0 && j < line.y.length ? line.y[j] : null;
  }

  drawCursor() {
    const d = this.d, x = this.x, L = this.cursorLayer;
    const u = this.hover === null ? this.u : this.hover;
    L.replaceChildren();
    for (const y of this.ys) svgEl("line", { x1: x(u), x2: x(u), y1: y.top, y2: y.bottom, class: "vl-cursor" }, L);
    const parts = [];
    for (const p of d.panels) {
      for (const line of p.lines) {
        const v = this.valueAt(line, u);
        if (v !== null) parts.push(`${line.short} ${VLMath.fmt(v)}`);
      }
    }
    const where = u === 0 ? "start" : d.labels[u];
    this.readout.textContent = `update ${u} (${where})${this.hover === null ? ", as on the wall" : ""}: ${parts.join(" · ")}`;
    this.box.dataset.update = String(u);
  }
}

export default function (component) {
  const { parentElement } = component;
  let logs = parentElement.__vlLogs;
  if (!logs) logs = parentElement.__vlLogs = window.__vlLogs = new Logs(parentElement);
  logs.update(component);
  // Unmounted: take the drawing away with the instance, or a later mount on this element would add a second one.
  return () => {
    window.removeEventListener("vl-update", logs.onWall);
    logs.resizeObserver.disconnect();
    logs.box.remove();
    delete parentElement.__vlLogs;
  };
}
