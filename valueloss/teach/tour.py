"""The guided tour: questions people really asked in issue threads, each answered live by the core.

Each step is data (question, choices, a two-sentence explanation, the issue threads that asked
it) plus a ``reveal`` function that computes the answer with ``valueloss`` calls. The right
choice is never stored as a bare fact the app trusts: ``check_answer`` compares the student's
choice with the answer the live numbers imply, and the tests check that this agrees with the
choice the text teaches (``TourStep.expected``). No Streamlit here.

Each step's scenario (a token, a synthetic batch, a split into micro-batches) is one set of numbers
that both its reveal and its "see it live" links read, so a link opens exactly the step's case.
Steps on a synthetic batch get it from ``reveal``'s ``make_batch`` (the Batch page's generator,
``valueloss.tools.batch.synthetic_batch``: the tools layer sits above this one, so it is passed in).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypedDict
from urllib.parse import urlencode

import numpy as np
import torch

from ..anatomy import value_loss_grad, value_loss_terms
from ..dialects import dialect_loss
from ..losses import clip_bounds, compute_value_loss
from ..threads import Thread
from .explain import tie_split, zero_gradient_interval
from .presets import PRESETS
from .simulate import SimConfig, simulate

__all__ = [
    "Choice",
    "Thread",
    "TourStep",
    "Reveal",
    "Feedback",
    "STEPS",
    "STEP_KEYS",
    "get_step",
    "reveal",
    "check_answer",
    "format_number",
    "shuffled_choices",
    "live_links",
    "progress_code",
    "read_progress",
    "shared_progress_words",
    "BatchMaker",
    "LiveView",
]

_F64 = torch.float64
CURVE_POINTS = 401


@dataclass(frozen=True)
class Choice:
    key: str  # stable id, used by the tests and the answer check
    label: str  # what the radio shows and the URL stores ("A", "B", "C")
    text: str


@dataclass(frozen=True)
class Reveal:
    """The live answer: what the numbers imply, the numbers, and the data of one figure."""

    answer: str  # the choice key these numbers imply
    verdict: str  # one sentence, with the live numbers in it
    numbers: tuple[tuple[str, float, str], ...]  # (label, value, "num" or "pct") shown as metrics
    figure: str  # figure kind, drawn by valueloss.viz.tour.reveal_figure
    data: dict = field(default_factory=dict)
    # Claims the step's text makes, each with whether these live numbers bear it out (the tests require all).
    facts: tuple[tuple[str, bool], ...] = ()


# A page that shows a step live: (page title, url_path, query parameters).
LiveView = tuple[str, str, tuple[tuple[str, str], ...]]
# ``synthetic_batch(**params)``: a batch with vpreds, returns, values and mask (B, T) tensors.
BatchMaker = Callable[..., Any]


@dataclass(frozen=True)
class TourStep:
    key: str
    tab: str  # tab label: part of shareable links, so keep it stable
    question: str
    scenario: str
    choices: tuple[Choice, ...]
    expected: str  # the choice the explanation teaches; tests check the live reveal agrees
    explanation: str  # two sentences
    threads: tuple[Thread, ...]
    compute: Callable[..., Reveal]  # () -> Reveal, or (make_batch) -> Reveal where ``on_batch``
    # Where to see it live: (page title, url_path, query parameters), opened with this scenario.
    live: tuple[LiveView, ...] = ()
    on_batch: bool = False  # the reveal runs on synthetic batches built by ``reveal``'s ``make_batch``

    def choice(self, key_or_label: str) -> Choice:
        for c in self.choices:
            if key_or_label in (c.key, c.label):
                return c
        valid = ", ".join(c.label for c in self.choices)
        raise ValueError(f"unknown answer {key_or_label!r} for step {self.key!r}; choose one of: {valid}")


@dataclass(frozen=True)
class Feedback:
    correct: bool
    message: str
    right_choice: Choice


# ----------------------------------------------------------------------------------------------
# The scenarios: each step's reveal and its "see it live" links read the same numbers


def _url_number(x: float | int) -> str:
    """A number as a link carries it: short, and read back as exactly the same float."""
    short = format(x, "g")
    return short if float(short) == float(x) else repr(float(x))


def _query(**values) -> tuple[tuple[str, str], ...]:
    return tuple((k, v if isinstance(v, str) else _url_number(v)) for k, v in values.items())


def _one_token(v_old: float, R: float, eps: float, v: float) -> LiveView:
    """One token with exactly this scenario (its sliders' URL keys are the notation itself)."""
    return ("One token", "explore", _query(v_old=v_old, R=R, eps=eps, v=v))


def _batch_page(params: dict, eps: float) -> LiveView:
    """The Batch page on the synthetic batch ``synthetic_batch(**params)`` (its keys: ``b_`` + parameter)."""
    return ("Batch", "batch", _query(**{f"b_{k}": x for k, x in params.items()}, b_eps=eps))


def _sanity_page(params: dict, eps: float, library: str) -> LiveView:
    """The Sanity check on the synthetic batch ``synthetic_batch(**params)``, for ``library`` at ``eps``."""
    query = _query(s_source="synthetic batch", s_lib=library, s_eps=eps, **{f"s_{k}": x for k, x in params.items()})
    return ("Sanity check", "sanity-check", query)


def _dynamics_page(config: SimConfig) -> LiveView:
    """Critic dynamics with the simulator fields where ``config`` differs from the page's default run."""
    keys = {"eps": "d_eps", "loss": "d_loss", "n_rollouts": "d_rollouts"}  # the fields the steps change
    default = SimConfig()
    changed = {name: getattr(config, name) for name in keys if getattr(config, name) != getattr(default, name)}
    others = [f for f in SimConfig.__dataclass_fields__ if f not in keys and getattr(config, f) != getattr(default, f)]
    if others:
        raise ValueError(f"the Critic dynamics link carries {', '.join(keys)} only, not {', '.join(others)}")
    return ("Critic dynamics", "dynamics", _query(**{keys[name]: x for name, x in changed.items()}))


def _token(p) -> tuple[float, float, float, float]:
    """(v_old, R, eps, v) of a preset."""
    return p.v_old, p.R, p.eps, p.v


def _token_words(v_old: float, R: float, eps: float, v: float | None = None) -> str:
    """The scenario in the app's notation, as the step's text states it (its link carries the same numbers)."""
    words = f"v_old = {v_old:g}, R = {R:g}, eps = {eps:g}" + ("" if v is None else f", v = {v:g}")
    return words.replace("-", "−")


# Step 1: the numbers of openai/baselines#765 (v_old, R, eps, v).
BASELINES_765 = (5.0, 10.0, 0.2, 1.0)

# Step 5: the Batch page's own synthetic batch at its defaults (64 responses of 16 to 256 tokens, GAE returns,
# one small critic update), at the eps the step asks about.
CLIPFRAC_BATCH: dict = {"seed": 0}
CLIPFRAC_EPS = 0.2

# Step 6: the simulator's default critic over three rollouts.
FIRST_MINIBATCH_RUN = SimConfig(n_rollouts=3)

# Step 7: one synthetic batch whose rewards and critic noise are multiplied by each scale; no KL penalty (it would
# not scale), and a critic that moved exactly halfway to its targets (step 0.5, no update noise).
RETURN_SCALES = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
RETURN_UNITS_EPS = 0.2
RETURN_UNITS_LINKED_SCALE = 10.0


def return_units_batch(scale: float) -> dict:
    """The synthetic-batch parameters of step 7 at one return scale."""
    return {
        "reward_mean": 0.5 * scale,
        "reward_std": 1.0 * scale,
        "value_noise": 0.3 * scale,
        "kl_coef": 0.0,
        "step": 0.5,
        "pred_noise": 0.0,
    }


# Step 9: the Scale page's batch generator (``spread_lengths``) and problem, split on one rank, token-mean.
class MicroBatchSettings(TypedDict):
    sequences: int
    mean_length: int
    spread: float
    seed: int
    micro_batches: int
    eps: float


MICRO_BATCHES: MicroBatchSettings = {
    "sequences": 8,
    "mean_length": 6,
    "spread": 0.8,
    "seed": 1,
    "micro_batches": 4,
    "eps": 0.2,
}


def _micro_batch_lengths() -> list[int]:
    from ..scale import spread_lengths

    m = MICRO_BATCHES
    return spread_lengths(m["sequences"], m["mean_length"], m["spread"], m["seed"])


def _micro_batch_words() -> str:
    from ..scale import split_batch

    lengths = _micro_batch_lengths()
    tokens = split_batch(lengths, 1, micro_batches=MICRO_BATCHES["micro_batches"]).micro_tokens()[0]
    return (
        f"{len(lengths)} sequences of {min(lengths)} to {max(lengths)} tokens (the Scale page's batch, seed "
        f"{MICRO_BATCHES['seed']}), {len(tokens)} micro-batches of {min(tokens)} to {max(tokens)} tokens, token-mean, "
        "one rank."
    )


def _scale_page(scheme: str) -> LiveView:
    """The Scale page on step 9's batch and split, describing ``scheme`` (its picker's link value is the label)."""
    from ..scale import SCHEMES

    m = MICRO_BATCHES
    query = _query(
        sc_dp=1,
        sc_by="count",
        sc_k=m["micro_batches"],
        sc_n=m["sequences"],
        sc_len=m["mean_length"],
        sc_spread=m["spread"],
        sc_seed=m["seed"],
        sc_empty=0,
        sc_agg="token-mean",
        sc_eps=m["eps"],
        sc_scheme=SCHEMES[scheme].label,
    )
    return ("Scale", "scale", query)


# ----------------------------------------------------------------------------------------------
# Live computations (every number below comes from a valueloss call)


def _f(x) -> float:
    return float(x.item() if isinstance(x, torch.Tensor) else x)


def _curve(v_old: float, R: float, eps: float, v: float, *, convention: str = "bounds") -> dict:
    lo = min(v_old - eps, R, v) - 0.6 * (abs(R - v_old) + eps + 0.2)
    hi = max(v_old + eps, R, v) + 0.6 * (abs(R - v_old) + eps + 0.2)
    special = [v_old - eps, v_old + eps, R]
    grid = np.unique(np.concatenate([np.linspace(lo, hi, CURVE_POINTS), [s for s in special if lo <= s <= hi]]))
    t = value_loss_terms(grid, R, v_old, eps, convention)
    return {
        "v": grid,
        "loss_unclipped": t.loss_unclipped.numpy(),
        "loss_clipped": t.loss_clipped.numpy(),
        "loss_max": t.loss_max.numpy(),
        "grad": t.grad.numpy(),
        "zero_grad": (t.grad == 0).numpy() & t.clipped_wins.numpy(),
        "v_old": v_old,
        "R": R,
        "eps": eps,
        "current": v,
    }


def _reveal_active_term() -> Reveal:
    # The numbers from openai/baselines#765: R = 10, OLDVPRED = 5, vpred = 1, CLIPRANGE = 0.2.
    v_old, R, eps, v = BASELINES_765
    t = value_loss_terms(v, R, v_old, eps)
    lu, lc = _f(t.loss_unclipped), _f(t.loss_clipped)
    answer = "unclipped" if lu > lc else "clipped" if lc > lu else "tie"
    data = _curve(v_old, R, eps, v)
    # The explanation's rule: max switches to the clipped term exactly on the open interval of v that moved
    # more than eps toward R and is still nearer R than the band edge.
    interval = zero_gradient_interval(v_old, R, eps)
    assert interval is not None  # the 765 numbers put R far outside the band: |R - v_old| = 5 > eps
    lo, hi = interval
    grid = torch.tensor(data["v"], dtype=_F64)
    wins = value_loss_terms(grid, R, v_old, eps).clipped_wins
    strictly = ((grid > lo) & (grid < hi)) | ((grid == lo) | (grid == hi)) & wins
    facts = (
        (
            f"max switches to the clipped term exactly for {lo:g} < v < {hi:g}: past the band toward R, nearer R "
            "than the band edge",
            bool(torch.equal(wins, strictly)),
        ),
        ("v moved away from R, so max keeps the unclipped term", (v - v_old) * (R - v_old) < 0 and lu > lc),
    )
    return Reveal(
        facts=facts,
        answer=answer,
        verdict=f"(v − R)² = {lu:g} against (clip(v) − R)² = {lc:g}: max keeps the unclipped term, "
        f"and its gradient {_f(t.grad):g} pulls v back toward R.",
        numbers=(
            ("(v − R)²", lu, "num"),
            ("clip(v)", _f(t.v_clipped), "num"),
            ("(clip(v) − R)²", lc, "num"),
            ("d max / dv", _f(t.grad), "num"),
        ),
        figure="branches",
        data=data,
    )


def _reveal_zero_gradient() -> Reveal:
    p = PRESETS["past-band-toward-R"]
    closed = _f(value_loss_grad(p.v, p.R, p.v_old, p.eps))
    # The same through verl's whole loss and autograd, on a one-token batch.
    vpreds = torch.tensor([[p.v]], dtype=_F64, requires_grad=True)
    loss, clipfrac = compute_value_loss(
        vpreds, torch.tensor([[p.R]], dtype=_F64), torch.tensor([[p.v_old]], dtype=_F64), torch.ones(1, 1), p.eps
    )
    loss.backward()
    autograd = _f(vpreds.grad)
    unclipped_grad = 2 * (p.v - p.R)
    answer = "zero" if closed == 0.0 else "full" if closed == unclipped_grad else "partial"
    span = zero_gradient_interval(p.v_old, p.R, p.eps)
    lo, hi = span if span is not None else (p.v, p.v)
    flat = np.linspace(lo, hi, 41)[1:-1]
    facts = (
        (
            "the loss is flat in v past the band toward R (until v is farther from R than the band edge)",
            span is not None and bool((value_loss_grad(flat, p.R, p.v_old, p.eps) == 0).all()),
        ),
        (
            "clip(v) is the constant v_old + eps there",
            _f(value_loss_terms(p.v, p.R, p.v_old, p.eps).v_clipped) == p.v_old + p.eps,
        ),
    )
    return Reveal(
        facts=facts,
        answer=answer,
        verdict=f"v moved {p.v - p.v_old:g} toward R with eps = {p.eps:g}: the clipped term wins, it is flat in v, "
        f"so d max/dv = {closed:g} (autograd through verl's loss agrees: {autograd:g}).",
        numbers=(
            ("d max / dv (closed form)", closed, "num"),
            ("autograd of verl's vf_loss", autograd, "num"),
            ("vf_clipfrac", _f(clipfrac), "pct"),
            ("2(v − R), the unclipped pull", unclipped_grad, "num"),
        ),
        figure="gradient",
        data=_curve(p.v_old, p.R, p.eps, p.v),
    )


def _min_form(v: torch.Tensor, R: float, v_old: float, eps: float) -> torch.Tensor:
    """The per-token loss if max were replaced by min (what the threads propose)."""
    lu = (v - R) ** 2
    lc = (clip_bounds(v, torch.full_like(v, v_old), eps) - R) ** 2
    return torch.min(lu, lc)


def _reveal_max_not_min() -> Reveal:
    p = PRESETS["moved-away"]
    grad_max = _f(value_loss_grad(p.v, p.R, p.v_old, p.eps))
    v = torch.tensor(p.v, dtype=_F64, requires_grad=True)
    _min_form(v, p.R, p.v_old, p.eps).backward()
    grad_min = _f(v.grad)
    data = _curve(p.v_old, p.R, p.eps, p.v)
    grid = torch.tensor(data["v"], dtype=_F64, requires_grad=True)
    loss_min = _min_form(grid, p.R, p.v_old, p.eps)
    (grad_min_curve,) = torch.autograd.grad(loss_min.sum(), grid)
    data.update(loss_min=loss_min.detach().numpy(), grad_min=grad_min_curve.numpy())
    if grad_min == 0.0 and grad_max != 0.0:
        answer = "min-freezes"
    elif grad_min == grad_max:
        answer = "same"
    else:
        answer = "min-larger"
    return Reveal(
        answer=answer,
        verdict=f"v moved {p.v - p.v_old:g}, away from R = {p.R:g}. With max the gradient is {grad_max:g} (pull back); "
        f"with min it would be {grad_min:g}: the token would drift away unopposed.",
        numbers=(
            ("gradient with max", grad_max, "num"),
            ("gradient with min", grad_min, "num"),
            ("v − v_old", p.v - p.v_old, "num"),
        ),
        figure="max-min",
        data=data,
    )


def _reveal_eps_zero() -> Reveal:
    p = PRESETS["eps-zero"]  # eps = 0
    step = 0.1 * (p.R - p.v_old)
    points = {
        "start": p.v_old,  # first minibatch: v == v_old
        "toward": p.v_old + step,
        "away": p.v_old - step,
    }
    grads = {k: _f(value_loss_grad(x, p.R, p.v_old, p.eps)) for k, x in points.items()}
    full = {k: 2 * (x - p.R) for k, x in points.items()}
    if grads["toward"] == 0.0 and grads["away"] != 0.0 and grads["start"] != 0.0:
        answer = "toward-blocked"
    elif all(g == 0.0 for g in grads.values()):
        answer = "frozen"
    else:
        answer = "off"
    data = _curve(p.v_old, p.R, p.eps, p.v_old)
    data.update(points=points, point_grads=grads)
    share = grads["start"] / full["start"]
    split = tie_split("bounds", p.v_old, p.v_old, p.eps)
    facts = (
        (
            f"at v = v_old verl passes {split.words} of the gradient (both bounds tie at once)",
            float(split.share) == share,
        ),
        ("the loss is not bounded by eps: the step away keeps its full gradient", grads["away"] == full["away"]),
    )
    return Reveal(
        facts=facts,
        answer=answer,
        verdict=f"At v = v_old (the first minibatch) both terms tie, and with eps = 0 both bounds of verl's clip tie "
        f"too, so it passes {share:g} = {split.words} of the gradient (½ from the unclipped term, ½ · ½ · ½ through "
        f"the clip); one step toward R later the gradient is {grads['toward']:g}; a step away is pulled back with "
        f"{grads['away']:g}.",
        numbers=(
            ("gradient at v = v_old", grads["start"], "num"),
            ("gradient after a step toward R", grads["toward"], "num"),
            ("gradient after a step away", grads["away"], "num"),
        ),
        figure="eps-zero",
        data=data,
    )


def _real(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The real (unpadded) tokens of a (B, T) tensor, as float64."""
    return x[mask.bool()].to(_F64)


def _reveal_clipfrac(make_batch: BatchMaker) -> Reveal:
    eps = CLIPFRAC_EPS
    b = make_batch(**CLIPFRAC_BATCH)
    vpreds, returns, values, mask = b.vpreds, b.returns, b.values, b.mask
    _, vf_clipfrac = compute_value_loss(vpreds, returns, values, mask, eps)
    t = value_loss_terms(vpreds, returns, values, eps)
    outside = _f(_real(t.prediction_clipped, mask).mean())
    zero_grad = _f(_real(t.grad == 0, mask).mean())
    # RLinf#1529: the ratio was measured on the already-clipped update clamp(v - v_old), never beyond eps.
    after_clip = _f(_real(torch.clamp(vpreds - values, -eps, eps).abs() > eps, mask).mean())
    restoring = outside - _f(vf_clipfrac)
    clipfrac = _f(vf_clipfrac)
    # vf_clipfrac is a float32 mean when the batch is float32: "equal" means equal to that precision.
    same = max(torch.finfo(vpreds.dtype).eps * 4, 1e-12)
    if abs(clipfrac - zero_grad) < same and outside > clipfrac:
        answer = "zero-grad"
    elif abs(clipfrac - outside) < same:
        answer = "outside"
    else:
        answer = "large-loss"
    n_tokens = int(mask.sum())
    facts = (
        ("vf_clipfrac counts exactly the zero-gradient tokens", abs(clipfrac - zero_grad) < same),
        ("some tokens outside the band still learn", restoring > 0),
        ("a ratio computed after clipping is 0", after_clip == 0.0),
    )
    return Reveal(
        facts=facts,
        answer=answer,
        verdict=f"On the {n_tokens:,} real tokens: {outside:.1%} left the band but vf_clipfrac = {clipfrac:.1%}, "
        f"which is exactly the zero-gradient share ({zero_grad:.1%}); the other {restoring:.1%} left the band away "
        "from R, or overshot R by more than the band edge falls short of it, and still learn. Measured after "
        f"clipping, the ratio is {after_clip:.0%}.",
        numbers=(
            ("vf_clipfrac (verl)", clipfrac, "pct"),
            ("zero-gradient share", zero_grad, "pct"),
            ("prediction outside the band", outside, "pct"),
            ("ratio measured after clipping", after_clip, "pct"),
        ),
        figure="fractions",
        data={
            "labels": [
                "vf_clipfrac (verl, TRL)",
                "zero-gradient share",
                "|v − v_old| > eps (slime, TorchRL)",
                "after clipping (RLinf#1529 bug)",
            ],
            "values": [clipfrac, zero_grad, outside, after_clip],
            "kinds": ["zero_grad", "zero_grad", "band", "neutral"],
        },
    )


def _reveal_first_minibatch() -> Reveal:
    cfg = FIRST_MINIBATCH_RUN
    result = simulate(cfg)
    first = result.minibatch == 0
    first_epoch = first & (result.epoch == 0)
    # verl's loss on each rollout's whole batch before any step: vpreds are the stored values themselves.
    v_old, targets = torch.from_numpy(result.v_old), torch.from_numpy(result.targets)
    at_start = max(
        _f(compute_value_loss(v.clone(), r, v, torch.ones_like(v), cfg.eps)[1])
        for v, r in zip(v_old, targets, strict=True)
    )
    first_values = result.vf_clipfrac[first_epoch]
    later_max = float(result.vf_clipfrac[~first_epoch].max())
    if later_max == 0.0:
        answer = "bug"  # a metric stuck at 0 everywhere, as in RLinf#1529
    elif at_start == 0.0 and np.all(first_values == 0.0):
        answer = "v-equals-old"
    else:
        answer = "eps-large"
    return Reveal(
        answer=answer,
        verdict=f"vf_clipfrac on the first minibatch of each of the {cfg.n_rollouts} rollouts: "
        f"{', '.join(f'{x:g}' for x in first_values)}; later minibatches reach {later_max:.0%}. "
        f"On each rollout's batch with vpreds = values verl's vf_clipfrac is {at_start:g}.",
        numbers=(
            ("vf_clipfrac, first minibatch", float(first_values.max()), "pct"),
            ("largest later vf_clipfrac", later_max, "pct"),
            ("vf_clipfrac when vpreds = values", at_start, "pct"),
        ),
        figure="clipfrac-updates",
        data={
            "update": np.arange(1, cfg.n_updates + 1),
            "clipfrac": result.vf_clipfrac,
            "first": first_epoch,
            "per_rollout": cfg.n_epochs * cfg.n_minibatches,
            "eps": cfg.eps,
        },
    )


def _reveal_return_units(make_batch: BatchMaker) -> Reveal:
    eps = RETURN_UNITS_EPS
    scales = np.array(RETURN_SCALES)
    clipfracs, sigmas = [], []
    for s in scales:
        b = make_batch(**return_units_batch(float(s)))
        clipfracs.append(_f(compute_value_loss(b.vpreds, b.returns, b.values, b.mask, eps)[1]))
        sigmas.append(_f(_real(b.returns - b.values, b.mask).std()))
    by_scale = np.array(clipfracs)
    at1, at10 = by_scale[scales == 1.0][0], by_scale[scales == RETURN_UNITS_LINKED_SCALE][0]
    answer = "up" if at10 > at1 else "down" if at10 < at1 else "same"
    sigma1, sigma10 = sigmas[list(scales).index(1.0)], sigmas[list(scales).index(RETURN_UNITS_LINKED_SCALE)]
    return Reveal(
        answer=answer,
        verdict=f"Same batch, same relative progress, eps = {eps:g}: vf_clipfrac is {at1:.0%} at scale 1 and {at10:.0%} "
        f"at scale 10. eps = {eps:g} is {eps / sigma1:.2f} σ of (R − v_old) at scale 1 but {eps / sigma10:.3f} σ at "
        "scale 10.",
        numbers=(
            ("vf_clipfrac at scale 1", float(at1), "pct"),
            ("vf_clipfrac at scale 10", float(at10), "pct"),
            ("eps", eps, "num"),
        ),
        figure="scale",
        data={"scale": scales, "clipfrac": clipfracs, "eps": eps, "sigma": sigma1},
    )


def _dialect_grad(name: str, v: float, R: float, v_old: float, eps: float) -> tuple[float, float]:
    vpreds = torch.tensor([[v]], dtype=_F64, requires_grad=True)
    out = dialect_loss(
        name, vpreds, torch.tensor([[R]], dtype=_F64), torch.tensor([[v_old]], dtype=_F64), torch.ones(1, 1), eps
    )
    out.loss.backward()
    return _f(out.loss), _f(vpreds.grad)


def _dialect_grad_curve(name: str, grid: np.ndarray, R: float, v_old: float, eps: float) -> np.ndarray:
    """Per-token gradient along v: every grid point is one token of a (1, N) batch, so d mean / dv_i is
    (1 / N) of that token's gradient, which the factor N undoes."""
    v = torch.tensor(grid[None, :], dtype=_F64, requires_grad=True)
    out = dialect_loss(name, v, torch.full_like(v, R), torch.full_like(v, v_old), torch.ones_like(v), eps)
    (g,) = torch.autograd.grad(out.loss, v)
    return (g * grid.size).detach().numpy()[0]


def _reveal_sb3() -> Reveal:
    p = PRESETS["moved-away"]
    sb3_loss, sb3_grad = _dialect_grad("sb3", p.v, p.R, p.v_old, p.eps)
    ppo2_loss, ppo2_grad = _dialect_grad("cleanrl", p.v, p.R, p.v_old, p.eps)
    if sb3_grad == 0.0 and ppo2_grad != 0.0:
        answer = "no-frozen"
    elif sb3_grad == 2 * ppo2_grad:
        answer = "no-half"
    else:
        answer = "same"
    data = _curve(p.v_old, p.R, p.eps, p.v, convention="delta")
    data.update(
        grad_sb3=_dialect_grad_curve("sb3", data["v"], p.R, p.v_old, p.eps),
        grad_ppo2=_dialect_grad_curve("cleanrl", data["v"], p.R, p.v_old, p.eps),
    )
    inside_v = p.v_old + 0.5 * p.eps
    facts = (
        ("outside the band SB3's gradient is 0 for a token that moved away from R", sb3_grad == 0.0),
        (
            "inside the band the two agree up to SB3's missing 0.5",
            _dialect_grad("sb3", inside_v, p.R, p.v_old, p.eps)[1]
            == 2 * _dialect_grad("cleanrl", inside_v, p.R, p.v_old, p.eps)[1],
        ),
    )
    return Reveal(
        facts=facts,
        answer=answer,
        verdict=f"Token at v = {p.v:g}, v_old = {p.v_old:g}, R = {p.R:g}, eps = {p.eps:g} (moved away from R): "
        f"SB3's gradient is {sb3_grad:g}, PPO2's (CleanRL) is {ppo2_grad:g}. SB3 freezes it; PPO2 pulls it back.",
        numbers=(
            ("SB3 loss", sb3_loss, "num"),
            ("SB3 dL/dv", sb3_grad, "num"),
            ("PPO2 / CleanRL loss", ppo2_loss, "num"),
            ("PPO2 / CleanRL dL/dv", ppo2_grad, "num"),
        ),
        figure="dialect-grad",
        data=data,
    )


def _reveal_micro_batches() -> Reveal:
    from ..scale import analyse, make_problem, multiplier_curve, split_batch

    m = MICRO_BATCHES
    lengths, k = _micro_batch_lengths(), m["micro_batches"]
    split = split_batch(lengths, 1, micro_batches=k)
    problem = make_problem(lengths, eps=m["eps"], seed=m["seed"])  # the Scale page's problem for this batch
    before = analyse(problem, split, "verl-engine-local")
    after = analyse(problem, split, "verl-global")
    ratio = before.grad_ratio
    answer = "times-k" if ratio > 0.75 * k else "quarter" if ratio < 1.0 / (0.75 * k) else "same"
    tokens = ", ".join(str(t) for t in split.micro_tokens()[0])
    return Reveal(
        answer=answer,
        verdict=f"Micro-batches of {tokens} tokens: before #6957 the summed per-micro-batch means give a critic "
        f"gradient {ratio:.3g}× the single-batch one along its direction (token weights {before.weights.multiplier:.3g}× "
        f"on average); with verl's global counts it is {after.grad_ratio:.3g}×.",
        numbers=(
            ("learning-rate multiplier before #6957", before.weights.multiplier, "num"),
            ("gradient along the reference, before #6957", ratio, "num"),
            ("gradient along the reference, after #6957", after.grad_ratio, "num"),
        ),
        figure="multiplier",
        data={
            "curves": {
                key: (label, multiplier_curve(lengths, 1, key))
                for key, label in (
                    ("verl-engine-local", "verl before #6957"),
                    ("verl-global", "verl after #6957"),
                )
            },
            "current": k,
            "micro_tokens": split.micro_tokens()[0],
        },
    )


# ----------------------------------------------------------------------------------------------
# The steps


def _choices(*items: tuple[str, str]) -> tuple[Choice, ...]:
    return tuple(Choice(key=k, label="ABCDE"[i], text=t) for i, (k, t) in enumerate(items))


STEPS: tuple[TourStep, ...] = (
    TourStep(
        key="active-term",
        tab="1 · Which term?",
        question="Which term of max((v − R)², (clip(v) − R)²) is active for this token?",
        scenario=_token_words(*BASELINES_765[:3])
        + f", and the critic now predicts v = {BASELINES_765[3]:g} (the numbers from openai/baselines#765).",
        choices=_choices(
            ("unclipped", "The unclipped term (v − R)²: v moved away from R, so its error is larger"),
            ("clipped", "The clipped term (clip(v) − R)²: v left the band, so the clip takes over"),
            ("tie", "Neither: outside the band both terms are equal, so max has no winner"),
        ),
        expected="unclipped",
        explanation="v moved away from R, so clipping it back toward v_old would shrink the error, and max keeps the "
        "larger, unclipped error with its full gradient. max only switches to the clipped term when v moved more "
        "than eps toward R and is still nearer R than the band edge, which includes overshooting R by less than "
        "R's distance to that edge.",
        threads=(
            Thread("openai/baselines", 765, "PPO2 clip value loss"),
            Thread("openai/baselines", 91, "IN PPO, clipping the value loss with max is OK?"),
        ),
        compute=_reveal_active_term,
        live=(_one_token(*BASELINES_765),),
    ),
    TourStep(
        key="zero-gradient",
        tab="2 · Zero gradient?",
        question="Will this token's gradient be zero?",
        scenario=_token_words(*_token(PRESETS["past-band-toward-R"]))
        + ": the critic moved 0.5 toward R, more than eps.",
        choices=_choices(
            ("zero", "Yes, exactly 0: the token stops learning until the next rollout"),
            ("full", "No: it is 2(v − R) = −1, pulling v on toward R as usual"),
            ("partial", "No, but it is reduced: somewhere between 0 and 2(v − R) = −1"),
        ),
        expected="zero",
        explanation="Past the band toward R, as long as v is nearer R than the band edge, the clipped term is larger, "
        "and clip(v) is the constant v_old + eps, so the loss is flat in v. That is the point of the clamp: it is not "
        "meaningless under max, it is what stops a token that already moved more than eps.",
        threads=(
            Thread(
                "deepspeedai/DeepSpeedExamples",
                956,
                "Why Does vf_loss Take the Maximum Value, Rendering Clamp Meaningless?",
            ),
        ),
        compute=_reveal_zero_gradient,
        live=(
            _one_token(*_token(PRESETS["past-band-toward-R"])),
            ("Gradients", "gradients", ()),
        ),
    ),
    TourStep(
        key="max-not-min",
        tab="3 · Why max?",
        question="This token moved more than eps away from R. If the loss used min instead of max, what gradient would it get?",
        scenario=_token_words(*_token(PRESETS["moved-away"])) + ".",
        choices=_choices(
            ("same", "The same gradient as with max: outside the band the two forms always agree"),
            ("min-freezes", "Zero: min picks the flat clipped term, so the token is never pulled back"),
            ("min-larger", "A larger pull toward R: min removes the brake that the clipped term adds"),
        ),
        expected="min-freezes",
        explanation="max is the pessimistic choice, like the policy's min of surrogates with the sign flipped: the loss "
        "never gets smaller because v left the band. min would reward moving away (the clipped term is smaller there) "
        "and freeze exactly the tokens that most need correcting.",
        threads=(
            Thread("openai/baselines", 91, "IN PPO, clipping the value loss with max is OK?"),
            Thread("openai/baselines", 765, "PPO2 clip value loss"),
            Thread(
                "huggingface/trl",
                202,
                "Why not compute the value using the current critic instead of the previous critic-model…",
            ),
        ),
        compute=_reveal_max_not_min,
        live=(_one_token(*_token(PRESETS["moved-away"])),),
    ),
    TourStep(
        key="eps-zero",
        tab="4 · eps = 0",
        question="What does eps = 0 do to the critic within one PPO update?",
        scenario=_token_words(*_token(PRESETS["eps-zero"])[:3]) + " (the band has no width).",
        choices=_choices(
            ("off", "It turns clipping off: with no band at all, the loss is the plain squared error"),
            ("frozen", "It freezes the critic: no token can move at all during the update"),
            ("toward-blocked", "Only the first step toward R learns; later moves toward R get no gradient"),
        ),
        expected="toward-blocked",
        explanation="With eps = 0, clip(v) is v_old itself, so once v moves toward R (by less than 2|R − v_old|) the "
        "clipped term (v_old − R)² is the larger one and its gradient is 0. Only the first minibatch, where v equals "
        "v_old and both terms and both bounds tie (verl passes 5/8 of the gradient there), moves the critic: it "
        "learns one step per rollout, and the loss is not bounded by eps at all (unlike RLlib's vf_clip_param, which "
        "clips the loss value).",
        threads=(Thread("ray-project/ray", 19291, "[Bug] PPO value function loss is incorrect"),),
        compute=_reveal_eps_zero,
        live=(
            _one_token(*_token(replace(PRESETS["eps-zero"], v=PRESETS["eps-zero"].v_old))),
            ("Gradients", "gradients", (("g_tie", "eps-zero"),)),
            _dynamics_page(SimConfig(eps=0.0)),
        ),
    ),
    TourStep(
        key="clipfrac-counts",
        tab="5 · What clipfrac counts",
        question="What does verl's vf_clipfrac count, and what does it miss?",
        scenario=f"The Batch page's default synthetic batch (seed {CLIPFRAC_BATCH['seed']}: 64 responses, GAE returns, "
        f"after one small critic update), eps = {CLIPFRAC_EPS:g}.",
        choices=_choices(
            ("outside", "Every token whose prediction left the band v_old ± eps, in either direction"),
            ("zero-grad", "Tokens where the clipped term wins; it misses outside ones that still learn"),
            ("large-loss", "Every token whose squared error exceeds eps, inside the band or outside it"),
        ),
        expected="zero-grad",
        explanation="vf_clipfrac = mean(L_clip > L_unclip) counts the tokens whose gradient is zero, not every token "
        "outside the band: tokens that moved away from R, or overshot R by more than the band edge falls short of it, "
        "are outside but still learn. Libraries that log |v − v_old| > eps report a larger number, and a ratio "
        "computed after clipping is always 0.",
        threads=(
            Thread("RLinf/RLinf", 1529, "critic/value_clip_ratio is always 0"),
            Thread("verl-project/verl", 498, "vf_loss nan in gsm8k ppo training"),
        ),
        compute=_reveal_clipfrac,
        live=(_batch_page(CLIPFRAC_BATCH, CLIPFRAC_EPS),),
        on_batch=True,
    ),
    TourStep(
        key="first-minibatch",
        tab="6 · First minibatch",
        question="Why is vf_clipfrac exactly 0 on the first minibatch of every PPO update?",
        scenario=f"The simulator's default critic ({FIRST_MINIBATCH_RUN.n_tokens} tokens, {FIRST_MINIBATCH_RUN.n_epochs} "
        f"epochs × {FIRST_MINIBATCH_RUN.n_minibatches} minibatches) over {FIRST_MINIBATCH_RUN.n_rollouts} rollouts, "
        f"eps = {FIRST_MINIBATCH_RUN.eps:g}.",
        choices=_choices(
            ("eps-large", "Because eps is too large for these returns: nothing reaches the edge"),
            ("v-equals-old", "Because vpreds still equal the stored values: every token is mid-band"),
            ("bug", "Because of a logging bug: the metric is computed after the clip is applied"),
        ),
        expected="v-equals-old",
        explanation="values are the critic's own predictions stored at the start of the update, so before the first "
        "optimizer step vpreds equal values and no token can be outside the band. The loss on that minibatch is the "
        "plain squared error; clipping only acts from the second step on.",
        threads=(Thread("verl-project/verl", 2642, "Understanding of vpred and values"),),
        compute=_reveal_first_minibatch,
        live=(_dynamics_page(FIRST_MINIBATCH_RUN),),
    ),
    TourStep(
        key="return-units",
        tab="7 · Return units",
        question="Every reward is multiplied by 10. eps stays 0.2 and the critic makes the same relative progress. "
        "What happens to vf_clipfrac?",
        scenario=f"One synthetic batch with its rewards and critic noise multiplied by scales from {RETURN_SCALES[0]:g} to "
        f"{RETURN_SCALES[-1]:g}, eps = {RETURN_UNITS_EPS:g}; the critic has moved exactly halfway to its targets.",
        choices=_choices(
            ("same", "Unchanged: eps is a relative tolerance, like the policy's ratio clip"),
            ("up", "It rises: eps bounds v − v_old in return units, so it is 10× tighter"),
            ("down", "It falls: next to larger returns the same eps is a looser band"),
        ),
        expected="up",
        explanation="The policy clip bounds a ratio, but the value clip bounds a difference, so eps carries the units of "
        "the returns and must follow reward scaling. That is why Stable-Baselines3 made it a separate, default-off "
        "parameter and why unnormalised RLHF returns can freeze most of a critic.",
        threads=(
            Thread("hill-a/stable-baselines", 216, "PPO2 value function clipping seems to be flawed"),
            Thread("DLR-RM/stable-baselines3", 1426),
            Thread("deepspeedai/DeepSpeedExamples", 556, "Critic Loss can not decrease"),
            Thread("vwxyzjn/cleanrl", 208, "Remove the value function clipping"),
            Thread("ray-project/ray", 8908, "[rllib] Should remove vf_clip param from PPO"),
        ),
        compute=_reveal_return_units,
        live=(
            _sanity_page(return_units_batch(RETURN_UNITS_LINKED_SCALE), RETURN_UNITS_EPS, "verl"),
            _batch_page(return_units_batch(RETURN_UNITS_LINKED_SCALE), RETURN_UNITS_EPS),
        ),
        on_batch=True,
    ),
    TourStep(
        key="sb3-vs-ppo2",
        tab="8 · SB3 vs PPO2",
        question="Stable-Baselines3 uses mean((R − clip(v))²), with no max. Is that the same loss as PPO2's max form?",
        scenario=_token_words(*_token(PRESETS["moved-away"])) + ": the token moved away from R, past the band.",
        choices=_choices(
            ("same", "Yes: inside the band v = clip(v), and outside it max picks the clipped term anyway"),
            ("no-frozen", "No: outside the band SB3 gives zero gradient even to a token that moved away"),
            ("no-half", "No, but the only difference is the 0.5 factor SB3 leaves out of its loss"),
        ),
        expected="no-frozen",
        explanation="Inside the band the two agree up to SB3's missing 0.5, but outside it clip(v) is constant, so SB3 "
        "gives every such token zero gradient, including ones that went the wrong way. PPO2's max keeps the "
        "unclipped term for those and pulls them back.",
        threads=(Thread("openai/baselines", 1134, "Clipped Loss in Critic of ppo2 unnecessarily long?"),),
        compute=_reveal_sb3,
        live=(("Gradients", "gradients", ()), _dynamics_page(SimConfig(loss="sb3"))),
    ),
    TourStep(
        key="micro-batches",
        tab="9 · Micro-batches",
        question=f"verl's critic before pull request #6957 (the fix that divides by the whole mini-batch's counts): one "
        f"rank cuts its {MICRO_BATCHES['sequences']} sequences into {MICRO_BATCHES['micro_batches']} micro-batches, each "
        "micro-batch's value loss is its own token mean, and the losses are backpropagated and summed before the "
        "optimizer step. Compared with one backward pass over the whole batch, how large is the critic's gradient?",
        scenario=_micro_batch_words(),
        choices=_choices(
            ("same", "The same: a mean of token losses does not depend on how the batch is cut"),
            ("times-k", "About 4× larger: each micro-batch adds a whole mean, so the four add up"),
            ("quarter", "About 4× smaller: each micro-batch mean covers only a quarter of the tokens"),
        ),
        expected="times-k",
        explanation="Without the global counts agg_loss divides each micro-batch by its own token count, and the "
        "engine sums the micro-batch losses, so the gradient grows with the number of micro-batches and changes "
        "with use_dynamic_bsz. verl#6957 passes dp_size, batch_num_tokens and global_batch_size, so every token "
        "weighs 1/N of the whole mini-batch however it is split.",
        threads=(
            Thread(
                "verl-project/verl",
                6957,
                "[algo] fix: normalize critic value loss over the global mini-batch, not per micro-batch",
            ),
        ),
        live=(_scale_page("verl-engine-local"),),
        compute=_reveal_micro_batches,
    ),
)

STEP_KEYS = tuple(s.key for s in STEPS)
_BY_KEY = {s.key: s for s in STEPS}


def get_step(key: str) -> TourStep:
    if key not in _BY_KEY:
        raise ValueError(f"unknown tour step {key!r}; valid steps are: {', '.join(STEP_KEYS)}")
    return _BY_KEY[key]


def format_number(value: float, kind: str = "num") -> str:
    """How the tour shows a live number: shares as percentages, the rest with 4 significant digits."""
    if kind == "pct":
        return f"{value:.1%}"
    return f"{value:.4g}"


def reveal(step_key: str, make_batch: BatchMaker | None = None) -> Reveal:
    """Compute the step's answer and figure data live from the core.

    ``make_batch``: the synthetic-batch generator (``valueloss.tools.batch.synthetic_batch``) for the steps that
    run on one (``TourStep.on_batch``); the others ignore it.
    """
    step = get_step(step_key)
    if not step.on_batch:
        return step.compute()
    if not callable(make_batch):
        raise TypeError(
            f"step {step_key!r} runs on a synthetic batch: pass make_batch=valueloss.tools.batch.synthetic_batch"
        )
    return step.compute(make_batch)


def shuffled_choices(step_key: str, seed: int) -> tuple[Choice, ...]:
    """The step's choices in one visitor's order, relabelled A, B, C in that order.

    The order depends only on ``seed`` and the step, so a visitor sees the same order all session while
    another visitor (another seed) sees another; the right answer lands on every letter about equally often.
    """
    step = get_step(step_key)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    order = list(step.choices)
    random.Random(f"{seed}:{step.key}").shuffle(order)
    return tuple(replace(c, label="ABCDE"[i]) for i, c in enumerate(order))


def live_links(step_key: str) -> tuple[tuple[str, str], ...]:
    """(page title, relative URL) of each page that shows this step live, with its scenario in the query."""
    step = get_step(step_key)
    return tuple((title, f"./{path}" + (f"?{urlencode(query)}" if query else "")) for title, path, query in step.live)


_PROGRESS = {None: "-", True: "r", False: "w"}


def progress_code(outcomes) -> str:
    """One character per step ("r" right, "w" wrong, "-" not answered): shareable progress, no answers in it."""
    outcomes = list(outcomes)
    if len(outcomes) != len(STEPS):
        raise ValueError(f"outcomes must have one entry per step ({len(STEPS)}), got {len(outcomes)}")
    return "".join(_PROGRESS[o] for o in outcomes)


def read_progress(code: str) -> tuple[bool | None, ...]:
    """The outcomes a :func:`progress_code` carries (a malformed code is a ValueError)."""
    back = {v: k for k, v in _PROGRESS.items()}
    if not isinstance(code, str) or len(code) != len(STEPS) or any(ch not in back for ch in code):
        raise ValueError(f"a progress code has {len(STEPS)} characters from 'r', 'w', '-', got {code!r}")
    return tuple(back[ch] for ch in code)


def shared_progress_words(code: str) -> str | None:
    """What a shared progress link says (no answers in it); None for a malformed code or one with no answer."""
    try:
        outcomes = read_progress(code)
    except ValueError:
        return None
    right = [n for n, o in enumerate(outcomes, 1) if o is True]
    wrong = [n for n, o in enumerate(outcomes, 1) if o is False]
    if not right and not wrong:
        return None

    def steps(numbers: list[int]) -> str:
        return ("step " if len(numbers) == 1 else "steps ") + ", ".join(map(str, numbers))

    which = "; ".join(f"{kind}: {steps(ns)}" for kind, ns in (("right", right), ("wrong", wrong)) if ns)
    return (
        f"This link shares someone's progress: {len(right) + len(wrong)} of {len(STEPS)} answered, {len(right)} right "
        f"({which}). Their answers are not in the link: make your own predictions below."
    )


def check_answer(
    step_key: str,
    answer: str,
    live: Reveal | None = None,
    order: tuple[Choice, ...] | None = None,
    make_batch: BatchMaker | None = None,
) -> Feedback:
    """Right or wrong, judged against the answer the live numbers imply (``answer``: a choice key or label).

    ``order``: the choices as this visitor saw them (:func:`shuffled_choices`), so labels mean what was shown.
    ``live``: the step's reveal, computed here (with ``make_batch``, see :func:`reveal`) when not given.
    """
    step = get_step(step_key)
    if not isinstance(answer, str):
        raise TypeError(f"answer must be a choice label such as 'A', got {type(answer).__name__}")
    if order is not None:
        step = replace(step, choices=tuple(order))
    chosen = step.choice(answer)
    live = live if live is not None else reveal(step_key, make_batch)
    right = step.choice(live.answer)
    if chosen.key == right.key:
        return Feedback(True, f"Right: {right.label}. {live.verdict}", right)
    return Feedback(False, f"Not quite: the answer is {right.label}. {live.verdict}", right)
