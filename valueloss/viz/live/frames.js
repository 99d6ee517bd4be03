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
