// Loss surfaces, redrawn in the browser: the four 2-D panels (unclipped, clipped, max, max − unclipped)
// over a (v, R) or (v, v_old) plane, recomputed with VLMath.terms (tokenmath.js, prepended) on every
// animation frame while the ε or fixed-value slider of this component moves. On release the numbers go
// back to Python (the URL-bound sidebar sliders and the rest of the page follow).
const PANELS = ["loss_unclipped", "loss_clipped", "loss_max", "pessimism"];

function node(tag, attrs, parent) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, v);
  if (parent) parent.appendChild(n);
  return n;
}

// numpy.linspace(start, stop, n): i * step + start, the last point exactly stop.
function linspace(start, stop, n) {
  const step = (stop - start) / (n - 1);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = i * step + start;
  out[n - 1] = stop;
  return out;
}

class Surfaces {
  constructor(root) {
    this.root = root;
    this.frames = [];
    this.pending = false;
    this.moving = false;
    const box = (this.box = node("div", { class: "vs-live" }, root));
    const controls = node("div", { class: "vs-controls" }, box);
    this.inputs = {};
    for (const name of ["eps", "fixed"]) {
      const label = node("label", { class: "vs-control" }, controls);
      const text = node("span", { class: "vs-control-label" }, label);
      const input = node("input", { type: "range", "data-control": name }, label);
      const out = node("output", { class: "vs-control-value" }, label);
      // a pointer release sends at once; arrow keys send 350 ms after the last press (one rerun, not one per key)
      input.addEventListener("pointerdown", () => { this.moving = "pointer"; });
      input.addEventListener("keydown", () => { this.moving = "keys"; });
      input.addEventListener("input", () => { this.live[name] = parseFloat(input.value); this.moving = this.moving || "keys"; this.schedule(); });
      input.addEventListener("change", () => {
        clearTimeout(this.keyTimer);
        const later = this.moving === "keys";
        this.keyTimer = setTimeout(() => { this.moving = false; this.send(); }, later ? 350 : 0);
      });
      this.inputs[name] = { input, text, out };
    }
    this.summary = node("div", { class: "vs-summary", "data-testid": "vs-summary", "aria-live": "polite" }, box);
    const grid = node("div", { class: "vs-grid" }, box);
    this.panels = PANELS.map((key) => {
      const cell = node("div", { class: "vs-panel", "data-panel": key }, grid);
      const title = node("div", { class: "vs-title" }, cell);
      const wrap = node("div", { class: "vs-canvas" }, cell);
      const canvas = node("canvas", { role: "img" }, wrap);
      const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      svg.setAttribute("class", "vs-overlay");
      svg.setAttribute("viewBox", "0 0 100 100");
      svg.setAttribute("preserveAspectRatio", "none");
      wrap.appendChild(svg);
      const scale = node("div", { class: "vs-scale" }, cell);
      canvas.addEventListener("pointermove", (e) => this.hover(e, key, canvas));
      canvas.addEventListener("pointerleave", () => { this.tip.style.display = "none"; });
      return { key, title, canvas, svg, scale };
    });
    this.axes = node("div", { class: "vs-axes" }, box);
    this.tip = node("div", { class: "vs-tip" }, box);
  }

  update(args) {
    this.args = args;
    const d = (this.cfg = args.data);
    this.server = { ...d.state };
    if (!this.moving || !this.live) this.live = { ...d.state };
    for (const [name, lim] of Object.entries({ eps: d.limits.eps, fixed: d.limits.fixed })) {
      const { input, text } = this.inputs[name];
      input.min = lim[0]; input.max = lim[1]; input.step = lim[2];
      input.value = this.live[name];
      text.textContent = name === "eps" ? "ε (drag: redraws as you move)" : `${d.fixedAxis}, held fixed`;
      input.setAttribute("aria-label", name === "eps" ? "ε: clip range" : `${d.fixedAxis}, held fixed`);
    }
    PANELS.forEach((k, i) => { this.panels[i].title.textContent = d.titles[k]; });
    this.schedule();
  }

  send() {
    const s = this.live;
    const payload = releasePayload(s, ["eps", "fixed"]);
    if ((s.eps !== this.server.eps || s.fixed !== this.server.fixed) && this.args && payload) {
      this.args.setTriggerValue("release", payload);
    }
  }

  schedule() {
    scheduleRender(this);
  }

  // The plane exactly as pages/surfaces.py builds it: axis_values (linspace) and evaluate_grid.
  compute() {
    const s = this.live, d = this.cfg, n = d.n;
    const axis = linspace(s.fixed - d.halfWidth, s.fixed + d.halfWidth, n);
    const out = { axis, n };
    for (const k of PANELS) out[k] = new Float64Array(n * n);
    out.region = new Int8Array(n * n);
    let bites = 0;
    const t = {};
    const byR = d.pair === "R";
    for (let j = 0; j < n; j++) {
      for (let i = 0; i < n; i++) {
        const v = axis[i], y = axis[j];
        if (byR) VLMath.termsInto(t, v, y, s.fixed, s.eps, d.conv);
        else VLMath.termsInto(t, v, s.fixed, y, s.eps, d.conv);
        const o = j * n + i;
        out.loss_unclipped[o] = t.lossUnclipped;
        out.loss_clipped[o] = t.lossClipped;
        out.loss_max[o] = t.lossMax;
        out.pessimism[o] = t.lossMax - t.lossUnclipped;
        out.region[o] = t.region;
        if (out.pessimism[o] > 0) bites += 1;
      }
    }
    out.bites = bites / (n * n);
    return out;
  }

  render() {
    if (!this.cfg) return;
    const s = this.live, d = this.cfg;
    const g = (this.grid = this.compute());
    const n = g.n;
    for (const p of this.panels) {
      const z = g[p.key];
      let top = 0;
      for (let o = 0; o < z.length; o++) if (z[o] > top && z[o] !== Infinity) top = z[o];
      top = top > 0 ? top : 1;
      if (p.canvas.width !== n || !p.img) {
        p.canvas.width = n; p.canvas.height = n;
        p.img = p.canvas.getContext("2d").createImageData(n, n);
        p.pixels = new Uint32Array(p.img.data.buffer);
      }
      // white → the term's colour in 256 steps, packed as one 32-bit RGBA word per cell
      if (!p.lut || p.lutColor !== d.colors[p.key]) {
        const rgb = [1, 3, 5].map((i) => parseInt(d.colors[p.key].slice(i, i + 2), 16));
        p.lut = new Uint32Array(256);
        const word = new Uint8ClampedArray(p.lut.buffer);
        for (let k = 0; k < 256; k++) {
          const f = k / 255;
          word.set([255 + (rgb[0] - 255) * f, 255 + (rgb[1] - 255) * f, 255 + (rgb[2] - 255) * f, 255], 4 * k);
        }
        p.lutColor = d.colors[p.key];
      }
      const lut = p.lut, px = p.pixels, scale = 255 / top;
      for (let j = 0; j < n; j++) {
        const row = (n - 1 - j) * n, src = j * n; // y grows upward
        for (let i = 0; i < n; i++) {
          const zz = z[src + i];
          px[row + i] = zz === zz ? lut[zz >= top ? 255 : zz <= 0 ? 0 : (zz * scale) | 0] : 0;
        }
      }
      const ctx = p.canvas.getContext("2d"), img = p.img;
      ctx.putImageData(img, 0, 0);
      p.scale.textContent = `0 … ${VLMath.fmt(top)}`;
      p.canvas.setAttribute("aria-label", `${d.titles[p.key]}: from 0 to ${VLMath.fmt(top)}`);
      // band edges: v = v_old ± ε (vertical when v_old is fixed, diagonal when it is the y axis)
      const lo = g.axis[0], hi = g.axis[n - 1];
      const pxv = (v) => ((v - lo) / (hi - lo)) * 100, py = (y) => 100 - ((y - lo) / (hi - lo)) * 100;
      let lines = "";
      for (const e of [-s.eps, s.eps]) {
        lines += d.pair === "R"
          ? `<line x1="${pxv(s.fixed + e)}" x2="${pxv(s.fixed + e)}" y1="0" y2="100"/>`
          : `<line x1="${pxv(lo + e)}" y1="${py(lo)}" x2="${pxv(hi + e)}" y2="${py(hi)}"/>`;
      }
      p.svg.innerHTML = lines;
    }
    for (const name of ["eps", "fixed"]) this.inputs[name].out.textContent = VLMath.fmt(s[name]);
    // Python's f"{share:.0%}": x * 100 rounded half to even
    const pct = g.bites * 100;
    let whole = Math.round(pct);
    if (whole - pct === 0.5 && whole % 2 !== 0) whole -= 1;
    this.summary.textContent = `The clipped term wins (max − unclipped > 0) on ${whole}% of this plane.`;
    this.box.dataset.bites = g.bites;
    this.axes.textContent = `Across: ${d.axisTitles.x}, ${VLMath.fmt(g.axis[0])} to ${VLMath.fmt(g.axis[n - 1])}; ` +
      `up: ${d.axisTitles.y}, same range. Dashed: the band edges v = v_old ± ε.`;
  }

  hover(e, key, canvas) {
    if (!this.grid) return;
    const r = canvas.getBoundingClientRect(), n = this.grid.n;
    const i = Math.min(n - 1, Math.max(0, Math.floor(((e.clientX - r.left) / r.width) * n)));
    const j = Math.min(n - 1, Math.max(0, n - 1 - Math.floor(((e.clientY - r.top) / r.height) * n)));
    const o = j * n + i, d = this.cfg, f = VLMath.fmt;
    this.tip.textContent = `${d.xAxis} = ${f(this.grid.axis[i])}, ${d.yAxis} = ${f(this.grid.axis[j])}: ` +
      `${f(this.grid[key][o])}, ${d.labels[this.grid.region[o]]}`;
    const box = this.box.getBoundingClientRect();
    this.tip.style.display = "block";
    this.tip.style.left = `${Math.min(e.clientX - box.left + 12, box.width - 260)}px`;
    this.tip.style.top = `${e.clientY - box.top + 12}px`;
  }
}

export default function (component) {
  const { parentElement } = component;
  let sf = parentElement.__vlSurfaces;
  if (!sf) sf = parentElement.__vlSurfaces = window.__vlSurfaces = new Surfaces(parentElement);
  sf.update(component);
  // Unmounted: take the drawing away with the instance, or a later mount on this element would add a second one.
  return () => { sf.box.remove(); delete parentElement.__vlSurfaces; };
}
