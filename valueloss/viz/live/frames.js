// Frame scheduling shared by the live explorer and the live surfaces: however many changes ask for a
// redraw within one animation frame, `view.render()` runs once, and what that frame cost goes into
// `view.frames` ({t: frame start, script: ms of JS + style and layout}), which the browser tests and
// tests/e2e/live_benchmark.py read. `view` holds `pending`, `frames`, `box` (its root element) and
// `render()`. Plain script (no import/export), like tokenmath.js: the components prepend it to their module.
function scheduleRender(view) {
  if (view.pending) return;
  view.pending = true;
  requestAnimationFrame((t) => {
    view.pending = false;
    const start = performance.now();
    view.render();
    view.box.getBoundingClientRect(); // include style and layout in the frame's cost
    view.frames.push({ t, script: performance.now() - start });
    if (view.frames.length > 5000) view.frames.splice(0, 1000);
  });
}

// What a component may send back to Python: exactly `keys`, each a finite number, nothing nested; null
// for anything else, and then nothing is sent. Streamlit parses a component's JSON before the app can
// look at it (a value nested 100,000 deep raised RecursionError in its deserializer, see
// tests/app/test_streamlit_as_documented.py), so the component itself never sends more than this.
function releasePayload(state, keys) {
  const out = {};
  for (const key of keys) {
    const x = state[key];
    if (typeof x !== "number" || !Number.isFinite(x)) return null;
    out[key] = x;
  }
  return out;
}
