// One token's clipped value loss in float64: the same formulas, in the same order, as
// valueloss/anatomy.py `value_loss_terms` (both terms, their max, who wins, the region code and the
// autograd-exact gradient, exact-tie halving of torch.maximum / torch.minimum included), plus the
// number format of valueloss/teach/explain.py `fmt`. The live explorer and its exactness test
// (tests/e2e/test_live_math.py) both load this file, so the browser shows what the core computes.
// Plain script (no import/export): the component prepends it to its module, the test injects it.
const VLMath = (() => {
  // Region codes: valueloss/anatomy.py REGION_* (the test checks they agree).
  const INSIDE = 0, ZERO_GRAD = 1, AWAY = 2, OVERSHOT = 3, TIE = 4, NAN = 5;

  // torch.maximum / torch.minimum forward: NaN propagates (Math.max/min do the same).
  const tmax = (a, b) => (a !== a || b !== b ? NaN : a > b ? a : b);
  const tmin = (a, b) => (a !== a || b !== b ? NaN : a < b ? a : b);
  // torch.clamp(x, lo, hi) = min(max(x, lo), hi), NaN passes through.
  const tclamp = (x, lo, hi) => tmin(tmax(x, lo), hi);
  const tsign = (x) => (x !== x ? NaN : x > 0 ? 1 : x < 0 ? -1 : 0);

  // What torch.maximum(a, b) / torch.minimum(a, b) send back to their first / second argument.
  const half = (g, a, b) => (a === b ? g / 2 : g);
  const maxBackA = (g, a, b) => (a < b ? 0 : half(g, a, b));
  const maxBackB = (g, a, b) => (a > b ? 0 : half(g, a, b));
  const minBackA = (g, a, b) => (a > b ? 0 : half(g, a, b));

  function clip(v, vOld, eps, convention) {
    if (convention === "bounds") return tmax(tmin(v, vOld + eps), vOld - eps);
    if (convention === "clamp") return tclamp(v, vOld - eps, vOld + eps);
    if (convention === "delta") return vOld + tclamp(v - vOld, -eps, eps);
    throw new Error("unknown clip convention " + convention);
  }

  // value_loss_terms for one token (v, R, v_old, eps, convention), grad_output = 1.
  function terms(v, R, vOld, eps, convention) {
    return termsInto({}, v, R, vOld, eps, convention);
  }

  // The same, written into `out` (a grid reuses one object instead of allocating one per cell).
  function termsInto(out, v, R, vOld, eps, convention) {
    const lo = vOld - eps, hi = vOld + eps;
    let inner = NaN, vClipped;
    if (convention === "bounds") {
      inner = tmin(v, hi);
      vClipped = tmax(inner, lo);
    } else {
      vClipped = clip(v, vOld, eps, convention);
    }
    const dU = v - R, dC = vClipped - R;
    const lossUnclipped = dU * dU, lossClipped = dC * dC;

    const fromUnclipped = maxBackA(1, lossUnclipped, lossClipped) * (2 * dU);
    const throughClip = maxBackB(1, lossUnclipped, lossClipped) * (2 * dC);
    let fromClipped;
    if (convention === "bounds") {
      fromClipped = minBackA(maxBackA(throughClip, inner, lo), v, hi);
    } else if (convention === "clamp") {
      fromClipped = v >= lo && v <= hi ? throughClip : 0;
    } else {
      const delta = v - vOld;
      fromClipped = delta >= -eps && delta <= eps ? throughClip : 0;
    }
    const grad = fromUnclipped + fromClipped;

    const lossMax = tmax(lossUnclipped, lossClipped);
    const clippedWins = lossClipped > lossUnclipped;
    const delta = v - vOld;
    const predictionClipped = Math.abs(delta) > eps;
    const inside = convention !== "delta" ? v > vOld - eps && v < vOld + eps : Math.abs(delta) < eps;
    const toward = tsign(delta) === tsign(R - vOld);
    let region = AWAY;
    if (toward && R !== vOld) region = OVERSHOT;
    if (clippedWins) region = ZERO_GRAD;
    if (lossClipped === lossUnclipped) region = TIE;
    if (inside) region = INSIDE;
    if (v !== v || R !== R || vOld !== vOld) region = NAN;
    out.vClipped = vClipped;
    out.lossUnclipped = lossUnclipped;
    out.lossClipped = lossClipped;
    out.lossMax = lossMax;
    out.clippedWins = clippedWins;
    out.predictionClipped = predictionClipped;
    out.region = region;
    out.grad = grad;
    return out;
  }

  // Python's f"{x:.4g}" (round half to even on the exact binary value), then explain.fmt's rules:
  // "NaN", no "-0", a real minus sign.
  function formatG(x, p) {
    if (x !== x) return "nan";
    if (x === Infinity) return "inf";
    if (x === -Infinity) return "-inf";
    const sign = x < 0 || Object.is(x, -0) ? "-" : "";
    const a = Math.abs(x);
    if (a === 0) return sign + "0";
    // 40 significant digits are exact enough to see a true tie: a double differs from a p-digit
    // decimal halfway point by far more than 1e-40 relative unless it is that point.
    const [mant, expText] = a.toExponential(40).split("e");
    const digits = mant.replace(".", "");
    let exp = parseInt(expText, 10);
    let kept = digits.slice(0, p).split("").map(Number);
    const rest = digits.slice(p);
    const first = Number(rest[0]);
    const tail = rest.slice(1).replace(/0/g, "") !== "";
    const up = first > 5 || (first === 5 && (tail || kept[p - 1] % 2 === 1));
    if (up) {
      let i = p - 1;
      while (i >= 0) {
        if (kept[i] === 9) { kept[i] = 0; i -= 1; } else { kept[i] += 1; break; }
      }
      if (i < 0) { kept = [1].concat(kept.slice(0, p - 1)); exp += 1; }
    }
    const strip = (s) => (s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s);
    if (exp >= -4 && exp < p) {
      let s;
      if (exp >= 0) {
        const intPart = kept.slice(0, exp + 1).join("");
        const frac = kept.slice(exp + 1).join("");
        s = frac ? intPart + "." + frac : intPart;
      } else {
        s = "0." + "0".repeat(-exp - 1) + kept.join("");
      }
      return sign + strip(s);
    }
    const m = strip(kept[0] + "." + kept.slice(1).join(""));
    const e = Math.abs(exp) < 10 ? "0" + Math.abs(exp) : String(Math.abs(exp));
    return sign + m + "e" + (exp < 0 ? "-" : "+") + e;
  }

  function fmt(x) {
    if (x !== x) return "NaN";
    const text = formatG(x, 4);
    if (text === "-0" || text === "0") return "0";
    return text.replace(/-/g, "\u2212");
  }

  // valueloss/viz/token.py nice_ceil and view_range.
  function niceCeil(x) {
    if (!Number.isFinite(x) || x <= 0) return 1.0;
    const power = 10 ** Math.floor(Math.log10(x));
    for (const step of [1, 2, 5, 10]) if (x <= step * power * (1 + 1e-12)) return step * power;
    return 10 * power;
  }

  function viewRange(vOld, R, eps, v) {
    const marks = [vOld - eps, vOld + eps, R];
    if (Math.abs(R - vOld) > eps) marks.push(2 * R - (vOld + Math.sign(R - vOld) * eps));
    let lo = Math.min(...marks), hi = Math.max(...marks);
    const span = Math.max(hi - lo, 4 * eps, 1.0);
    lo -= 0.2 * span;
    hi += 0.2 * span;
    if (v < lo) lo = v - 0.1 * span;
    if (v > hi) hi = v + 0.1 * span;
    const step = niceCeil(span) / 10;
    return [Math.floor(lo / step) * step, Math.ceil(hi / step) * step];
  }

  return { INSIDE, ZERO_GRAD, AWAY, OVERSHOT, TIE, NAN, clip, terms, termsInto, fmt, formatG, niceCeil, viewRange };
})();
