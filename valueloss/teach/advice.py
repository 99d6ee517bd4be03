"""The advice on eps and a clip fraction: one decision table from the evidence to a verdict and what to do.

Every verdict the app gives (Batch, Sanity check, Your run) is a row of :data:`TABLE`: conditions on the
:class:`Evidence` -> a stable verdict code -> the words and a suggested eps. Rows are tried in order; the
first whose conditions all hold wins. A condition the evidence cannot decide (eps in return stds from a log
without the return std, say) holds neither way: its rows are skipped and the advice lists it under
``unchecked``. The last rows need only the clip fraction, so partial evidence always gets advice.

The suggested eps is read off the same evidence the verdict grades (:class:`ClipReading`): a verdict on a
logged clip fraction suggests the eps for the update size that reproduces the log, never the eps of an
unrelated batch, and says so. Clip fractions never rise with eps, so an eps that brings a fraction above
the target down to it is always larger than the eps in use.

Every statement carries the numbers its words quote (as written, :func:`shown`) and its claims (topic ->
stance), so tests check that the words quote the screen's numbers and that no two statements on a page
contradict each other (:func:`contradictions`).

    from valueloss.teach.advice import ClipReading, Evidence, Spread, advise
    advice = advise(Evidence(library="verl", eps=0.2, logged=0.31, returns=Spread(mean=0.8, min=-1.0, max=2.5),
                             values=Spread(mean=0.1, min=-0.4, max=1.9)))
    advice.code, advice.title, advice.suggested_eps, advice.unchecked
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from .. import _validate as check
from ..dialects import Dialect, get_dialect
from ..threads import Link, threads

__all__ = [
    "Severity",
    "ClipSource",
    "Finding",
    "Advice",
    "Spread",
    "ClipReading",
    "Evidence",
    "Condition",
    "Row",
    "CONDITIONS",
    "TABLE",
    "FORMATS",
    "shown",
    "Quote",
    "advise",
    "scale_finding",
    "beside_warnings",
    "contradictions",
    "EPS_SIGMA_TIGHT",
    "EPS_SIGMA_WIDE",
    "LAG_ROLLOUTS",
    "SCALE_MEAN_SIGMAS",
    "SCALE_STD_RATIO",
    "NOISE_MEDIAN_SIGMAS",
    "EV_WORSE_THAN_CONSTANT",
]

Severity = Literal["warning", "info", "ok"]
ClipSource = Literal["batch", "estimate", "log"]

# Thresholds of the table, named so the words and the tests quote them.
EPS_SIGMA_TIGHT = 0.1  # eps at most a tenth of a return std: small for these returns
EPS_SIGMA_WIDE = 2.0  # eps over two return stds: a band wider than most moves
LAG_ROLLOUTS = 3.0  # a gap of at least 3 eps takes at least 3 rollouts to close
SCALE_MEAN_SIGMAS = 3.0  # |mean(v_old) - mean(R)| in return stds: values and returns are offset
SCALE_STD_RATIO = 3.0  # std(v_old) / std(R) (or their ranges): values spread far wider than returns
NOISE_MEDIAN_SIGMAS = 0.6745  # median |N(0, 1)|: the median gap of a perfect critic, in noise stds
EV_WORSE_THAN_CONSTANT = -0.1  # explained variance below this: the values vary in ways the returns do not


# ------------------------------------------------------------------------------------------ statements


@dataclass(frozen=True)
class Finding:
    """One statement on a page: a problem, a fact or an all-clear, with the threads that asked about it.

    ``numbers`` are (quantity, as written) for every number the words quote; ``claims`` are (topic,
    stance) for what the words assert, so a page can be checked for two statements that disagree.
    """

    severity: Severity
    title: str
    explanation: str
    links: tuple[Link, ...] = ()
    numbers: tuple[tuple[str, str], ...] = ()
    claims: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Advice(Finding):
    """The verdict of one :data:`TABLE` row on the evidence, and what to do.

    ``eps_for_target`` is the eps that reaches the target on the evidence graded (``basis`` says which);
    ``suggested_eps`` is that eps where the advice is to change eps (None where the lead is elsewhere,
    e.g. an offset to fix first). ``used`` names the evidence the decision read, ``unchecked`` the checks
    the evidence could not decide (each with what it needs)."""

    code: str = ""
    eps_for_target: float | None = None
    suggested_eps: float | None = None
    basis: str = ""
    used: tuple[str, ...] = ()
    unchecked: tuple[str, ...] = ()


# ------------------------------------------------------------------------------------------ evidence


def _maybe(name: str, value) -> float | None:
    """None, or a real number as a float (NaN and inf pass: a log can hold them, and the table says so)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number or None, got {type(value).__name__}")
    return float(value)


@dataclass(frozen=True)
class Spread:
    """One quantity over the real tokens (returns R, or old values v_old): any statistic may be unknown."""

    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None

    def __post_init__(self):
        for name in ("mean", "std", "min", "max"):
            object.__setattr__(self, name, _maybe(name, getattr(self, name)))
        if self.std is not None and self.std < 0:
            raise ValueError(f"std must be >= 0, got {self.std}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min must be at most max, got min {self.min} > max {self.max}")

    @property
    def width(self) -> float | None:
        """max - min, where both are known and finite."""
        if self.min is None or self.max is None or not math.isfinite(self.max - self.min):
            return None
        return self.max - self.min

    @property
    def std_bound(self) -> float | None:
        """An upper bound on the std: the std itself, else half the range (no distribution on [a, b] has more)."""
        if self.std is not None and math.isfinite(self.std):
            return self.std
        return None if self.width is None else self.width / 2


@dataclass(frozen=True)
class ClipReading:
    """The clip fraction a verdict grades, and what the same evidence says about other eps.

    ``source``: "batch" (exact, this batch), "estimate" (the Gaussian model batch of summary statistics),
    "log" (the user's logged fraction). For a log, ``on`` says what the eps numbers were read on: "batch"
    (this batch's R and v_old) or "model" (the model batch), each with a critic that closes ``step`` of
    every gap per update, the step that reproduces the log; or "none" (the log alone: no eps numbers).
    ``reproduced`` is what that evidence clips at eps: at least the log where the log is above the target,
    at most the log otherwise, so the suggestion points the way the verdict does.
    """

    fraction: float
    source: ClipSource
    eps_for_target: float | None = None  # smallest eps at or below the target there; None: unknown/unreachable
    reachable: bool | None = None  # whether any eps reaches the target there (None: unknown)
    acts_below: float | None = None  # clipping acts there exactly when eps is below this
    on: Literal["batch", "model", "none"] = "batch"
    step: float | None = None  # the update step, a share of each gap R - v_old (estimates, and a reproduced log)
    reproduced: float | None = None  # a log: the reproducing evidence's clip fraction at eps
    most: float | None = None  # a log no update size reproduces: the most any size clips there

    def __post_init__(self):
        check.finite_number("fraction", self.fraction, low=0.0, high=1.0)
        if self.source not in ("batch", "estimate", "log"):
            raise ValueError(f"source must be 'batch', 'estimate' or 'log', got {self.source!r}")
        if self.on not in ("batch", "model", "none"):
            raise ValueError(f"on must be 'batch', 'model' or 'none', got {self.on!r}")
        for name in ("eps_for_target", "acts_below", "step", "reproduced", "most"):
            value = getattr(self, name)
            if value is not None:
                check.finite_number(name, value, low=0.0)


@dataclass(frozen=True)
class Evidence:
    """What is known about one batch or one phase of a run; everything but the library and eps may be missing.

    ``logged`` is the clip fraction a training log shows (the library's own definition, see its
    ``Dialect.sanity_definition``); ``reading`` is the graded clip fraction with its eps numbers. Give
    ``logged`` alone (a log, no batch), ``reading`` alone (a batch or an estimate), or both with a reading
    of source "log" whose fraction is the logged one (the batch or model resized to reproduce the log).
    ``batch_fraction``: the batch's (or estimate's) own fraction at eps, shown beside a graded log.
    """

    library: str = "verl"
    eps: float = 0.2
    target: float = 0.1
    logged: float | None = None
    reading: ClipReading | None = None
    batch_fraction: float | None = None
    returns: Spread = field(default_factory=Spread)
    values: Spread = field(default_factory=Spread)
    median_gap: float | None = None  # median |R - v_old| over the real tokens (a batch or the model)
    explained_variance: float | None = None
    value_loss: float | None = None  # the logged value loss (only its finiteness is judged)
    first_step: bool | None = None  # v == v_old on every token: the first mini-step of an update

    def __post_init__(self):
        get_dialect(self.library)
        object.__setattr__(self, "eps", check.finite_number("eps", self.eps, low=0.0))
        object.__setattr__(self, "target", check.finite_number("target", self.target, low=0.0, high=1.0))
        if self.logged is not None:
            object.__setattr__(self, "logged", check.finite_number("logged", self.logged, low=0.0, high=1.0))
        if self.batch_fraction is not None:
            check.finite_number("batch_fraction", self.batch_fraction, low=0.0, high=1.0)
        for name in ("median_gap", "explained_variance", "value_loss"):
            object.__setattr__(self, name, _maybe(name, getattr(self, name)))
        for name in ("returns", "values"):
            if not isinstance(getattr(self, name), Spread):
                raise TypeError(f"{name} must be a Spread, got {type(getattr(self, name)).__name__}")
        if self.reading is not None and not isinstance(self.reading, ClipReading):
            raise TypeError(f"reading must be a ClipReading, got {type(self.reading).__name__}")
        r = self.reading
        if self.logged is not None and r is not None and (r.source != "log" or r.fraction != self.logged):
            raise ValueError(
                "with a logged clip fraction the reading must grade the log (source 'log', fraction = logged): "
                "the eps it suggests must come from the evidence the verdict grades"
            )
        if r is not None and r.source == "log" and self.logged is None:
            raise ValueError("a reading of source 'log' needs the logged clip fraction (logged)")

    @property
    def dialect(self) -> Dialect:
        return get_dialect(self.library)

    @property
    def graded(self) -> ClipReading | None:
        """The clip fraction the verdict weighs: the reading, or the log alone."""
        if self.reading is not None:
            return self.reading
        return None if self.logged is None else ClipReading(self.logged, "log", on="none")


# ------------------------------------------------------------------------------------------ numbers


def _pct(x: float) -> str:
    return f"{x:.1%}" if math.isfinite(x) else "n/a"


def _pct_target(x: float) -> str:
    return f"{x:.0%}" if abs(x * 100 - round(x * 100)) < 1e-9 else f"{x:.1%}"


def _g4(x: float) -> str:
    return f"{x:.4g}"


def _g3(x: float) -> str:
    return f"{x:.3g}"


def _f1(x: float) -> str:
    return f"{x:.1f}"


# Quantity -> how the words and the screen write it: one format per quantity, so they always agree.
FORMATS: dict[str, Callable[[float], str]] = {
    "clip": _pct,
    "prediction": _pct,
    "away": _pct,
    "batch_clip": _pct,
    "reproduced": _pct,
    "most": _pct,
    "target": _pct_target,
    "eps": _g4,
    "eps_for_target": _g4,
    "acts_below": _g4,
    "largest_move": _g4,
    "sigma": _g4,
    "eps_sigma": _g3,
    "eps_for_target_sigma": _g3,
    "return_mean": _g3,
    "return_std": _g3,
    "value_mean": _g3,
    "value_std": _g3,
    "offset": _g3,
    "offset_sigmas": _f1,
    "spread_ratio": _f1,
    "median_gap": _g3,
    "lag": _f1,
    "offset_lag": _f1,
    "step": _g3,
    "explained_variance": lambda x: f"{x:.2f}",
    "value_loss": _g4,
}


def shown(quantity: str, value: float) -> str:
    """``value`` as the page writes ``quantity`` (the metric row and the words use this one function)."""
    return FORMATS[quantity](float(value))


class Quote:
    """Formats numbers with :func:`shown` and remembers each one the words quote."""

    def __init__(self):
        self.numbers: dict[str, str] = {}

    def __call__(self, quantity: str, value: float) -> str:
        text = shown(quantity, value)
        if self.numbers.setdefault(quantity, text) != text:
            raise RuntimeError(f"{quantity} quoted as {self.numbers[quantity]} and {text} in one statement")
        return text


# ------------------------------------------------------------------------------------------ facts


@dataclass(frozen=True)
class Facts:
    """The numbers the conditions and the words read, derived once from the evidence."""

    ev: Evidence
    dialect: Dialect
    definition: str
    graded: ClipReading | None
    sigma: float | None  # the return std, where known
    offset: float | None  # |mean(R) - mean(v_old)|
    offset_sigmas: float | None
    spread_ratio: float | None  # std(v_old) / std(R), else the ratio of their ranges
    spread_from_range: bool

    @property
    def eps(self) -> float:
        return self.ev.eps

    @property
    def reading(self) -> ClipReading:
        """The graded clip fraction, for the words of the verdicts that only fire when there is one."""
        if self.graded is None:
            raise ValueError("these words need a graded clip fraction, and the evidence has none")
        return self.graded

    @property
    def eps_sigma(self) -> float | None:
        return self.eps / self.sigma if self.sigma else None


def facts_of(ev: Evidence) -> Facts:
    d = ev.dialect
    r, v = ev.returns, ev.values
    sigma = r.std if r.std is not None and math.isfinite(r.std) and r.std > 0 else None
    offset = None
    if r.mean is not None and v.mean is not None and math.isfinite(r.mean - v.mean):
        offset = abs(r.mean - v.mean)
    scale = sigma
    if scale is None and r.std == 0:  # returns that do not vary: measure the offset against their size
        scale = max(abs(r.mean or 0.0), ev.eps) or None
    offset_sigmas = offset / scale if offset is not None and scale else None
    from_range = False
    spread = None
    if v.std is not None and sigma:
        spread = v.std / sigma
    elif v.width is not None and r.width:
        spread, from_range = v.width / r.width, True
    return Facts(ev, d, d.sanity_definition, ev.graded, sigma, offset, offset_sigmas, spread, from_range)


# ------------------------------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Condition:
    """A yes / no question about the evidence; ``test`` answers None where the evidence cannot tell."""

    name: str
    reads: tuple[str, ...]  # the evidence it reads, in words
    needs: str  # what it would need, where it cannot tell
    test: Callable[[Facts], bool | None]


def _nan(f: Facts) -> bool:
    ev = f.ev
    known = [ev.value_loss, ev.returns.mean, ev.values.mean]
    return any(x is not None and not math.isfinite(x) for x in known)


def _scale_mismatch(f: Facts) -> bool | None:
    sb = f.ev.returns.std_bound
    offset: bool | None
    if f.offset_sigmas is not None:
        offset = f.offset_sigmas > SCALE_MEAN_SIGMAS
    elif f.offset is not None and sb:  # sigma <= its bound, so an offset beyond 3 bounds is beyond 3 sigma
        offset = True if f.offset > SCALE_MEAN_SIGMAS * sb else None
    else:
        offset = None
    spread = None if f.spread_ratio is None else f.spread_ratio > SCALE_STD_RATIO
    if offset or spread:
        return True
    if offset is False and spread is False:
        return False
    return None


def _eps_tight(f: Facts) -> bool | None:
    if f.sigma is not None:
        return f.eps / f.sigma <= EPS_SIGMA_TIGHT
    bound = f.ev.returns.std_bound
    if bound and f.eps / bound > EPS_SIGMA_TIGHT:  # eps / sigma >= eps / bound
        return False
    return None


def _ratio_at_least(x: float | None, eps: float) -> bool | None:
    return None if x is None else x >= LAG_ROLLOUTS * eps


CONDITIONS: dict[str, Condition] = {
    c.name: c
    for c in (
        Condition(
            "not_finite",
            ("value loss", "mean return", "mean value"),
            "",
            _nan,
        ),
        Condition(
            "first_step",
            ("v − v_old of every token",),
            "",
            lambda f: bool(f.ev.first_step) and f.graded is not None and f.graded.source != "log",
        ),
        Condition("no_clip", ("clip fraction",), "", lambda f: f.graded is None),
        Condition(
            "eps_zero",
            ("eps", "the library's eps units"),
            "",
            lambda f: f.eps == 0 and f.dialect.eps_units == "return",
        ),
        Condition(
            "scale_mismatch",
            ("mean and std (or min and max) of the returns and of the values",),
            "whether values and returns live on different scales (needs both means and the returns' std; min and "
            "max can show a mismatch but not rule one out)",
            _scale_mismatch,
        ),
        Condition("loss_units", ("the library's eps units",), "", lambda f: f.dialect.eps_units == "loss"),
        Condition(
            "log_zero",
            ("logged clip fraction",),
            "",
            lambda f: f.graded is not None and f.graded.source == "log" and f.graded.fraction == 0,
        ),
        Condition("inactive", ("clip fraction",), "", lambda f: f.graded is not None and f.graded.fraction == 0),
        Condition(
            "over",
            ("clip fraction", "target"),
            "",
            lambda f: None if f.graded is None else f.graded.fraction > f.ev.target,
        ),
        Condition(
            "eps_tight",
            ("eps", "return std"),
            "eps in return stds (needs the returns' std)",
            _eps_tight,
        ),
        Condition(
            "offset_lag",
            ("mean return", "mean value", "eps"),
            "the offset |mean(R) − mean(v_old)| against eps (needs both means)",
            lambda f: _ratio_at_least(f.offset, f.eps),
        ),
        Condition(
            "critic_unexplained",
            ("explained variance",),
            "whether the critic explains the returns at all (needs the explained variance)",
            lambda f: None if f.ev.explained_variance is None else f.ev.explained_variance < EV_WORSE_THAN_CONSTANT,
        ),
        Condition(
            "gap_lag",
            ("median |R − v_old|", "eps"),
            "the median gap |R − v_old| against eps (needs a batch or the summary statistics)",
            lambda f: _ratio_at_least(f.ev.median_gap, f.eps),
        ),
    )
}


@dataclass(frozen=True)
class Row:
    """One row of the decision table: when every condition has its value, this verdict and these words."""

    code: str
    when: tuple[tuple[str, bool], ...]
    severity: Severity
    words: Callable[[Facts, Quote, str], tuple[str, str]]  # (facts, quote, target name) -> (title, explanation)
    links: tuple[str, ...] = ()
    claims: tuple[tuple[str, str], ...] = ()
    suggests: bool = False  # above the target the advice is a larger eps: ``suggested_eps`` is the eps for it
    grades: bool = False  # the words say whether the clip fraction is above or within the target (a claim)

    def matches(self, values: dict[str, bool | None]) -> bool:
        return all(values[name] is want for name, want in self.when)


# --- words shared by the rows


def _means(f: Facts) -> str:
    d = f.dialect
    if f.definition == "clamp":
        return f"their squared error exceeds {d.param_name}, so their loss is flat and their gradient zero"
    if d.combine_rule == "clip-only":
        return (
            f"{d.library}'s clip-only loss gives every one of these tokens zero gradient, even those that moved away "
            "from R"
        )
    if f.definition == "prediction":
        return "these tokens moved more than eps from v_old"
    return "these tokens moved more than eps toward R and get zero gradient"


def _source(f: Facts, q: Quote) -> str:
    g = f.reading
    if g.source == "log":
        beside = ""
        if f.ev.batch_fraction is not None:
            kind = "this estimate" if g.on == "model" else "this batch"
            beside = f" ({kind}: {q('batch_clip', f.ev.batch_fraction)})"
        return f"Your logged clip fraction {q('clip', g.fraction)}{beside}"
    if g.source == "estimate":
        return f"The estimated clip fraction {q('clip', g.fraction)}"
    return f"This batch's clip fraction {q('clip', g.fraction)}"


def basis_words(g: ClipReading, q: Quote) -> str:
    """The evidence the eps numbers were read on, in words."""
    if g.source == "batch":
        return "this batch"
    if g.source == "estimate":
        return "the model batch of these statistics"
    if g.step is not None and g.reproduced is not None:  # a log reproduced by an update step
        where = "this batch's returns and old values" if g.on == "batch" else "the model batch"
        return (
            f"{where} with a critic that closes {q('step', g.step)} of each gap R − v_old per update, the step that "
            f"reproduces your log ({q('reproduced', g.reproduced)} clipped)"
        )
    if g.most is not None:
        return f"your log, which no update step of the {'model' if g.on == 'model' else 'batch'} reproduces"
    return "your log alone"


def _reach(f: Facts, q: Quote, named: str) -> str:
    """Where the eps for the target comes from, or why there is none."""
    g = f.reading
    where = basis_words(g, q)
    param = f"a {f.dialect.param_name}" if f.dialect.eps_units == "loss" else "an eps"
    if g.eps_for_target is not None:
        return f"{param[0].upper() + param[1:]} of about {q('eps_for_target', g.eps_for_target)} reaches {named} on {where}."
    if g.reachable is False:
        return f"No {param[2:].strip()} reaches {named} on {where}."
    if g.source == "log" and g.most is not None:
        return (
            f"No update step reproduces your log from this evidence (the most it clips is {q('most', g.most)}), so it "
            "gives no eps for the target: the evidence is not from the run that logged it, or the log counts "
            "another definition."
        )
    return (
        f"The log alone does not say which eps reaches {named}: that needs how far the critic moves per update "
        "(a batch, or the returns' std)."
    )


def _sigma_words(f: Facts, q: Quote) -> str:
    sigma, ratio = f.sigma, f.eps_sigma
    if sigma is None or ratio is None:
        return ""
    return f" eps = {q('eps', f.eps)} is {q('eps_sigma', ratio)} return stds (σ_R = {q('sigma', sigma)})."


def _is_zero(f: Facts, q: Quote) -> str:
    """The graded source, saying it is 0."""
    return _source(f, q).replace(" clip fraction ", " clip fraction is ", 1)


def _over(f: Facts, q: Quote, named: str) -> str:
    return f"{_source(f, q)} is above {named}: {_means(f)}."


# --- the rows' words


def _w_not_finite(f, q, named):
    ev = f.ev
    parts = [
        (f"value loss {q('value_loss', ev.value_loss)}" if ev.value_loss is not None else ""),
        (f"mean return {q('return_mean', ev.returns.mean)}" if ev.returns.mean is not None else ""),
        (f"mean value {q('value_mean', ev.values.mean)}" if ev.values.mean is not None else ""),
    ]
    return (
        "The loss or the statistics are not finite",
        f"{', '.join(p for p in parts if p)}: a NaN or inf here poisons every number downstream, and no eps fixes "
        "it. In verl#498 the critic's values had drifted to [-16, 14] before vf_loss turned NaN: check the value "
        "head, the learning rate and the reward pipeline.",
    )


def _w_first_step(f, q, named):
    return (
        f"{q('clip', f.graded.fraction)} clipped here says nothing about eps",
        "v == v_old on every token (the first mini-step of an update), so no eps can clip anything: check a batch "
        "from a later mini-step, or the clip fraction your log shows over the whole update (verl#2642).",
    )


def _w_no_clip(f, q, named):
    return (
        "No clip fraction to grade",
        f"Neither a log nor a batch gives a clip fraction at eps = {q('eps', f.eps)}, so there is nothing to weigh "
        f"against {named}. Log the value clip fraction (verl: critic/vf_clipfrac), or check a batch.",
    )


def _w_eps_zero(f, q, named):
    g = f.graded
    over = g.fraction > f.ev.target
    return (
        f"eps = 0: {q('clip', g.fraction)} clipped, {'above' if over else 'within'} {named}; the critic learns one "
        "optimizer step per rollout",
        f"{_source(f, q)} is {'above' if over else 'at most'} {named}: {_means(f)}. With eps = 0 the band has no "
        "width. On the first "
        "mini-step after each rollout v == v_old and nothing is clipped, so every token takes that one optimizer "
        "step; from then on every move toward R has zero gradient until the next rollout. The critic still "
        "learns, one optimizer step per rollout, at a pace set by the learning rate, not by eps (the Critic "
        f"dynamics page shows it). Use a positive eps, or turn value clipping off. {_reach(f, q, named) if over else ''}",
    )


def _scale_words(f: Facts, q: Quote) -> str:
    """The statistics that put values and returns on different scales, and by how much."""
    r, v = f.ev.returns, f.ev.values
    stats = ""
    if r.mean is not None and v.mean is not None:
        v_std = f" and std {q('value_std', v.std)}" if v.std is not None else ""
        r_std = f" and std {q('return_std', r.std)}" if r.std is not None else ""
        stats = f"Old values have mean {q('value_mean', v.mean)}{v_std}; returns have mean {q('return_mean', r.mean)}{r_std}. "
    how = []
    if f.offset is not None and f.offset_sigmas is not None and f.offset_sigmas > SCALE_MEAN_SIGMAS and f.sigma is None:
        how.append(f"the means are {q('offset', f.offset)} apart and the returns do not vary")
    elif f.offset_sigmas is not None and f.offset_sigmas > SCALE_MEAN_SIGMAS:
        how.append(f"the means are {q('offset_sigmas', f.offset_sigmas)} return stds apart")
    elif f.offset is not None and f.offset_sigmas is None:
        how.append(f"the means are {q('offset', f.offset)} apart, more than 1.5 times the returns' whole range")
    if f.spread_ratio is not None and f.spread_ratio > SCALE_STD_RATIO:
        what = "range" if f.spread_from_range else "std"
        how.append(f"the values' {what} is {q('spread_ratio', f.spread_ratio)} times the returns'")
    text = "; ".join(how)
    return stats + text[:1].upper() + text[1:]


_VERL_498 = (
    "This is the pattern of verl#498 (values in [-16, 14] against returns in [0, 1]). Check the value-head "
    "initialisation and the reward / return normalisation before tuning eps."
)


def _w_offset(f, q, named):
    g = f.graded
    tail = ""
    if g.eps_for_target is not None:
        wide = f" ({q('eps_for_target_sigma', g.eps_for_target / f.sigma)} σ_R)" if f.sigma else ""
        tail = (
            f" On {basis_words(g, q)} only an eps of about {q('eps_for_target', g.eps_for_target)}{wide} would reach "
            f"{named}: a band that wide lets the critic jump the offset in one update, which switches clipping off "
            "rather than fixing the critic."
        )
    return (
        f"{q('clip', g.fraction)} clipped, above {named}: values and returns live on different scales",
        f"{_over(f, q, named)} {_scale_words(f, q)}: the tokens clip because the critic predicts on the wrong scale, "
        f"and no eps fixes that. {_VERL_498}{tail}",
    )


def scale_finding(evidence: Evidence) -> Finding | None:
    """Values and returns on different scales, as a finding beside a verdict that does not lead with it."""
    f = facts_of(evidence)
    if _scale_mismatch(f) is not True:
        return None
    q = Quote()
    text = f"{_scale_words(f, q)}: the critic predicts on the wrong scale, whatever eps does. {_VERL_498}"
    return Finding(
        "warning",
        "Values and returns live on different scales",
        text,
        threads("verl-project/verl#498", "deepspeedai/DeepSpeedExamples#556"),
        tuple(q.numbers.items()),
        (("first fix", "offset"),),
    )


def _w_clamp_never(f, q, named):
    d, g = f.dialect, f.graded
    below = (
        f" It would start acting below {d.param_name} = {q('acts_below', g.acts_below)}, the largest squared error "
        f"on {basis_words(g, q)}."
        if g.acts_below
        else ""
    )
    return (
        f"{q('clip', g.fraction)} clamped: {d.param_name} = {q('eps', f.eps)} never acts",
        f"{_is_zero(f, q)}: no token's squared error (v − R)² exceeds {d.param_name}, so the clamp never acts and "
        f"the loss is the plain squared error.{below}",
    )


def _w_clamp_over(f, q, named):
    d = f.dialect
    return (
        f"{q('clip', f.graded.fraction)} clamped, above {named}: {d.param_name} is small for these errors",
        f"{_over(f, q, named)} {d.library} clamps the squared error at {d.param_name} = {q('eps', f.eps)} (squared "
        f"return units), so the tokens the critic is most wrong about stop learning. {_reach(f, q, named)} Raise "
        f"{d.param_name} above the squared errors you expect, or scale the rewards (ray#19291, ray#8908).",
    )


def _w_clamp_within(f, q, named):
    d = f.dialect
    return (
        f"{q('clip', f.graded.fraction)} clamped: within {named}",
        f"{_source(f, q)} is at most {named}: {_means(f)}. {d.param_name} = {q('eps', f.eps)} freezes only the tokens "
        "the critic is most wrong about; the rest learn.",
    )


def _w_log_zero(f, q, named):
    batch = ""
    if f.ev.batch_fraction is not None and f.ev.batch_fraction > 0:
        batch = (
            f" This batch clips {q('batch_clip', f.ev.batch_fraction)} at the same eps, so if it comes from the same "
            "run the log is not counting what the loss clips."
        )
    return (
        f"Your log shows {q('clip', 0.0)} clipped",
        "A logged 0 has three causes: clipping never acts at this eps (no token moves more than eps in an update); "
        "the metric is computed from the already-clipped prediction, which makes it 0 always (RLinf#1529); or it "
        f"is logged on the first mini-step only, where v == v_old (verl#2642).{batch}",
    )


def _w_never(f, q, named):
    g = f.graded
    moved = (
        "more than eps from v_old"
        if f.definition == "prediction"
        else "more than eps toward R while staying nearer R than the band edge"
    )
    sigma = f" ({q('eps_sigma', f.eps_sigma)} σ_R)" if f.sigma else ""
    below = (
        f" It would start acting below eps = {q('acts_below', g.acts_below)}, the largest eps at which a token of "
        f"{basis_words(g, q)} clips."
        if g.acts_below
        else ""
    )
    return (
        f"{q('clip', g.fraction)} clipped: clipping never acts at eps = {q('eps', f.eps)}",
        f"{_is_zero(f, q)}: no token moved {moved}. At eps = {q('eps', f.eps)}{sigma} the trust "
        "band is wider than every move, so the loss is the plain squared error and value clipping does nothing: "
        f"it does not limit how fast the critic learns.{below} That is harmless; the evidence on whether value "
        "clipping helps at all is mixed (cleanrl#208).",
    )


def _w_within(f, q, named):
    wide = ""
    if f.eps_sigma is not None and f.eps_sigma > EPS_SIGMA_WIDE:
        wide = f" At {q('eps_sigma', f.eps_sigma)} σ_R the band is wide, so clipping acts only on rare large moves."
    return (
        f"{q('clip', f.graded.fraction)} clipped: within {named}",
        f"{_source(f, q)} is at most {named}: {_means(f)}. Most tokens keep their gradient, so the clip acts as a "
        f"brake on the few that moved furthest, which is what it is for.{wide}",
    )


def _w_tight(f, q, named):
    return (
        f"{q('clip', f.graded.fraction)} clipped, above {named}: eps is too small for this return scale",
        f"{_over(f, q, named)} eps = {q('eps', f.eps)} is {q('eps_sigma', f.eps_sigma)} return stds (σ_R = "
        f"{q('sigma', f.sigma)}), at most {EPS_SIGMA_TIGHT:g} σ_R: eps is in return units, so a value that suits "
        f"normalised returns is tight for these. {_reach(f, q, named)} Scale eps with the returns, or normalise the "
        "returns (hill-a/stable-baselines#216, DLR-RM/stable-baselines3#1426; DeepSpeedExamples#556 is a critic "
        "that could not keep up).",
    )


def _median_bound(f: Facts, q: Quote) -> str:
    """The median gap as what it is: an upper bound on what a critic can close, because of the returns' noise."""
    gap = f.ev.median_gap
    if gap is None:
        raise ValueError("the median-gap words need the evidence's median gap")
    lag = gap / f.eps
    return (
        f"The median gap |R − v_old| = {q('median_gap', gap)} is {q('lag', lag)} × eps, but "
        "that is an upper bound on what the critic can close: it includes the returns' own noise, which no critic "
        f"removes (a critic predicting E[R] exactly still shows a median gap of about {NOISE_MEDIAN_SIGMAS:.2f} "
        "noise stds)."
    )


def _w_lags(f, q, named):
    lag = f.offset / f.eps
    n = q("offset_lag", lag)  # one rounding for 'N × eps' and 'N rollouts'
    median = f" {_median_bound(f, q)}" if f.ev.median_gap is not None else ""
    return (
        f"{q('clip', f.graded.fraction)} clipped, above {named}: the critic lags its targets",
        f"{_over(f, q, named)} The returns and the values are {q('offset', f.offset)} apart on average "
        f"(|mean(R) − mean(v_old)|), {n} × eps: a gap every token shares, which a critic can close, but only about "
        f"eps per rollout, so it needs at least {n} rollouts.{median} Check the value head's initialisation and "
        "warm-up, the critic learning rate, and whether the returns drift (verl#498, DeepSpeedExamples#556). "
        f"{_reach(f, q, named)}",
    )


def _w_spread(f, q, named):
    lag = q("lag", f.ev.median_gap / f.eps)
    shared = (
        f", but only {q('offset', f.offset)} of it ({q('offset_lag', f.offset / f.eps)} × eps) is an offset every "
        "token shares; the rest is spread"
        if f.offset is not None
        else ", spread"
    )
    return (
        f"{q('clip', f.graded.fraction)} clipped, above {named}: the targets are far from v_old against eps",
        f"{_over(f, q, named)} The median gap |R − v_old| = {q('median_gap', f.ev.median_gap)} is {lag} × eps{shared}"
        ": tokens the critic predicts badly, and the returns' own noise, which no critic removes (a critic predicting "
        f"E[R] exactly still shows a median gap of about {NOISE_MEDIAN_SIGMAS:.2f} noise stds). So {lag} rollouts, at "
        f"about eps per rollout, is an upper bound on how long the critic needs. {_reach(f, q, named)} Where the "
        "returns are noisy, a high clip fraction is the clip braking moves toward noisy targets, which is what it is "
        "for (whether that helps is debated, cleanrl#208); a smaller critic step (learning rate × epochs) clips less "
        "too.",
    )


def _w_big_steps(f, q, named):
    lag = f.ev.median_gap / f.eps
    return (
        f"{q('clip', f.graded.fraction)} clipped, above {named}: the critic moves more than eps per update",
        f"{_over(f, q, named)}{_sigma_words(f, q)} The median gap |R − v_old| = {q('median_gap', f.ev.median_gap)} is "
        f"only {q('lag', lag)} × eps, yet many tokens moved more than eps toward R within one update: "
        "the critic's steps (learning rate × epochs) are large for this eps. Lower the critic learning rate or its "
        f"epochs, or raise eps. {_reach(f, q, named)} Whether value clipping helps at all is debated (cleanrl#208); "
        "a max form keeps tokens that moved away learning (openai/baselines#91).",
    )


def _w_unexplained(f, q, named):
    ev = f.ev.explained_variance
    return (
        f"{q('clip', f.graded.fraction)} clipped, above {named}: the critic predicts worse than a constant",
        f"{_over(f, q, named)} The explained variance is {q('explained_variance', ev)}, below 0: the critic's values "
        "vary in ways the returns do not, so it predicts them worse than a constant would (returns that are pure "
        "noise give 0, not less), and the tokens are far from R and stop at the band edge. Check the "
        "value head's initialisation and warm-up and the critic learning rate before tuning eps (verl#498, "
        f"DeepSpeedExamples#556). {_reach(f, q, named)}",
    )


def _w_over(f, q, named):
    return (
        f"{q('clip', f.graded.fraction)} clipped, above {named}",
        f"{_over(f, q, named)} Raise eps, or lower the critic's step (learning rate × epochs). {_reach(f, q, named)}",
    )


_SB = ("hill-a/stable-baselines#216", "DLR-RM/stable-baselines3#1426")
_OVER = ("clipping", "over target")
_WITHIN = ("clipping", "within target")
_RAISE = ("eps", "raise")

TABLE: tuple[Row, ...] = (
    Row("not-finite", (("not_finite", True),), "warning", _w_not_finite, ("verl-project/verl#498",),
        (("first fix", "non-finite numbers"),)),
    Row("first-step", (("first_step", True),), "info", _w_first_step, ("verl-project/verl#2642",),
        (("clipping", "cannot act yet"),)),
    Row("no-clip-fraction", (("no_clip", True),), "info", _w_no_clip),
    Row("offset", (("scale_mismatch", True), ("over", True)), "warning", _w_offset,
        ("verl-project/verl#498", "deepspeedai/DeepSpeedExamples#556"), (_OVER, ("first fix", "offset"))),
    Row("eps-zero", (("eps_zero", True),), "warning", _w_eps_zero, _SB,
        (("pace", "one optimizer step per rollout"), _RAISE), suggests=True, grades=True),
    Row("clamp-never-acts", (("loss_units", True), ("inactive", True)), "info", _w_clamp_never, (),
        (("clipping", "never acts"), ("pace", "not limited by the clip"))),
    Row("clamp-over", (("loss_units", True), ("over", True)), "warning", _w_clamp_over,
        ("ray-project/ray#19291", "ray-project/ray#8908"), (_OVER, _RAISE), suggests=True),
    Row("clamp-within", (("loss_units", True), ("over", False)), "ok", _w_clamp_within, (),
        (_WITHIN,)),
    Row("log-zero", (("log_zero", True),), "info", _w_log_zero, ("RLinf/RLinf#1529", "verl-project/verl#2642"),
        (("clipping", "none logged"),)),
    Row("never-acts", (("inactive", True),), "info", _w_never, ("vwxyzjn/cleanrl#208",),
        (("clipping", "never acts"), ("pace", "not limited by the clip"))),
    Row("within-target", (("over", False),), "ok", _w_within, (), (_WITHIN,)),
    Row("eps-too-small", (("over", True), ("eps_tight", True)), "warning", _w_tight,
        (*_SB, "deepspeedai/DeepSpeedExamples#556"), (_OVER, _RAISE, ("first fix", "eps"))),
    Row("critic-lags", (("over", True), ("offset_lag", True)), "warning", _w_lags,
        ("verl-project/verl#498", "deepspeedai/DeepSpeedExamples#556"),
        (_OVER, ("first fix", "critic"), ("pace", "about eps per rollout")), suggests=True),
    Row("gap-mostly-spread", (("over", True), ("gap_lag", True)), "warning", _w_spread, ("vwxyzjn/cleanrl#208",),
        (_OVER, ("pace", "about eps per rollout")), suggests=True),
    Row("large-steps", (("over", True), ("gap_lag", False)), "warning", _w_big_steps,
        ("vwxyzjn/cleanrl#208", "openai/baselines#91"), (_OVER, _RAISE, ("first fix", "critic step or eps")),
        suggests=True),
    Row("critic-unexplained", (("over", True), ("critic_unexplained", True)), "warning", _w_unexplained,
        ("verl-project/verl#498", "deepspeedai/DeepSpeedExamples#556"), (_OVER, ("first fix", "critic"))),
    Row("over-cause-unknown", (("over", True),), "warning", _w_over, (), (_OVER, _RAISE), suggests=True),
)  # fmt: skip


def _target_name(target: float) -> str:
    return f"your {shown('target', target)} target"


def advise(evidence: Evidence, *, target_name: str | None = None) -> Advice:
    """The first :data:`TABLE` row whose conditions the evidence meets, in words, with the eps it suggests.

    ``target_name`` names the target in the words (default "your 10% target")."""
    if not isinstance(evidence, Evidence):
        raise TypeError(f"evidence must be an Evidence, got {type(evidence).__name__}")
    f = facts_of(evidence)
    values = {name: c.test(f) for name, c in CONDITIONS.items()}
    row = next(r for r in TABLE if r.matches(values))
    earlier = TABLE[: TABLE.index(row) + 1]
    consulted = list(dict.fromkeys(name for r in earlier for name, _ in r.when))
    unchecked = tuple(CONDITIONS[n].needs for n in consulted if values[n] is None and CONDITIONS[n].needs)
    used = tuple(dict.fromkeys(w for n in consulted if values[n] is not None for w in CONDITIONS[n].reads))
    named = target_name or _target_name(evidence.target)
    q = Quote()
    title, explanation = row.words(f, q, named)
    g = f.graded
    if row.grades and g is None:
        raise ValueError(f"verdict {row.code!r} grades a clip fraction, and the evidence has none")
    over = g is not None and g.fraction > evidence.target
    eps_for_target = g.eps_for_target if g is not None else None
    return Advice(
        severity=row.severity,
        title=title,
        explanation=" ".join(explanation.split()),
        links=threads(*row.links),
        numbers=tuple(q.numbers.items()),
        claims=row.claims + ((_OVER if over else _WITHIN,) if row.grades else ()),
        code=row.code,
        eps_for_target=eps_for_target,
        suggested_eps=eps_for_target if row.suggests and over else None,
        basis=basis_words(g, Quote()) if g is not None else "",
        used=used,
        unchecked=unchecked,
    )


def beside_warnings(advice: Advice) -> Advice:
    """An all-clear shown next to warnings is information, and says the warnings stand."""
    if advice.severity != "ok":
        return advice
    return replace(
        advice,
        severity="info",
        explanation=advice.explanation + " See the warnings below: they do not depend on the clip fraction.",
    )


def contradictions(statements) -> list[str]:
    """Every topic on which two of ``statements`` (Findings) claim different stances, in words."""
    seen: dict[str, tuple[str, str]] = {}
    out = []
    for s in statements:
        for topic, stance in s.claims:
            if topic in seen and seen[topic][0] != stance:
                out.append(f"{topic}: {seen[topic][1]!r} says {seen[topic][0]!r}, {s.title!r} says {stance!r}")
            seen.setdefault(topic, (stance, s.title))
    return out
