"""The critic-dynamics simulator: a small critic trained PPO-style with a clipped value loss.

Why it exists: a static picture shows what the loss is; this shows what it *does* over training.
Within one PPO update (a rollout) the old values ``v_old`` are frozen, so a token can move only
about ``eps`` toward its target before its gradient turns to zero; after the rollout ``v_old``
catches up with ``v``. A return gap ``G`` therefore takes about ``G / eps`` rollouts to close.

Training loop (numbers follow the trainers):

    for each rollout k:
        R = v_true + noise * N(0, 1)              fresh noisy targets
        v_old = v (detached)                       the stored old values
        for each epoch, for each minibatch (shuffled tokens):
            loss = the chosen form on the minibatch   (logged: vf_loss, vf_clipfrac before the step)
            one optimizer step

Critics: ``"table"`` (one free value per token: no token can move another) and ``"shared"``
(a small tanh network over fixed random token features: every step moves every token).
Loss forms: a library of the registry (``"verl"``, ``"sb3"``, ...; every current entry whose combine rule is
``max`` or ``clip-only`` and whose eps is in return units), or ``"unclipped"`` (``0.5 mean((v - R)^2)``).
What a form computes is read from the entry's typed fields (``combine_rule``, ``clip_convention``,
``tie_rule``, ``half``), never from its name; the minibatch is a flat set of real tokens, so every
library's aggregation is its mean.

Several configurations that differ only in ``eps`` run side by side as rows of one batch (common
random numbers: same targets, same shuffles, same initial critic), which makes the eps sweep cheap.
The per-row loss uses the core's clip primitives; the tests check it, and its gradient, against
``dialect_loss`` of every simulated library row by row.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction

import numpy as np
import torch

from .. import _validate as check
from ..dialects import DIALECTS, CombineRule, get_dialect
from ..library_code import tf_maximum
from ..losses import clip_prediction
from .explain import tie_split

__all__ = [
    "CRITICS",
    "LOSS_FORMS",
    "OPTIMIZERS",
    "LOSS_LABELS",
    "LossForm",
    "loss_form",
    "first_step_share",
    "CLOSE_FRACTION",
    "training_logs_caption",
    "SWEEP_RATIOS",
    "SimConfig",
    "SimResult",
    "Sweep",
    "simulate",
    "sweep_eps",
    "loss_rows",
    "rule_of_thumb",
    "same_step_twin",
    "same_step_note",
    "wall_caption",
    "pushed_while_frozen_note",
]

CRITICS = ("table", "shared")
OPTIMIZERS = ("sgd", "adam")
UNCLIPPED = "unclipped"
_SIMULATED_RULES = ("max", "clip-only")


@dataclass(frozen=True)
class LossForm:
    """A loss the simulator trains with: the typed fields of a registry entry (or of no clipping at all)."""

    name: str  # the registry name, or "unclipped": what a link carries
    label: str  # the library and its releases, as every page names it
    combine_rule: CombineRule | None  # None: the plain squared error, no clip
    clip_convention: str  # "bounds", "clamp" or "delta": decides the gradient at exact ties only
    tie_rule: str  # "torch" splits a tied max; "tensorflow" gives it all to the unclipped term
    half: bool  # 0.5 * the mean
    formula: str  # the per-token loss in words (Dialect.formula_text)

    @property
    def short(self) -> str:
        """The library without its parenthesis: "OpenRLHF since 2025-04-12", "Stable-Baselines3 2.x"."""
        return self.label.split(" (")[0]


def _simulated(d) -> bool:
    return d.current and d.eps_units == "return" and d.combine_rule in _SIMULATED_RULES


LOSS_FORMS = tuple(name for name, d in DIALECTS.items() if _simulated(d)) + (UNCLIPPED,)


def loss_form(name: str) -> LossForm:
    """The simulated loss called ``name``: a current registry entry with a max or clip-only form, or "unclipped"."""
    check.choice("loss", name, LOSS_FORMS)
    if name == UNCLIPPED:
        return LossForm(UNCLIPPED, "unclipped", None, "bounds", "torch", True, "½·(v − R)², no clip")
    d = get_dialect(name)
    return LossForm(name, d.library, d.combine_rule, d.clip_convention, d.tie_rule, d.half, d.formula_text)


LOSS_LABELS = {name: loss_form(name).label for name in LOSS_FORMS}
CLOSE_FRACTION = 0.9  # a gap counts as closed once 90 % of it is gone
SWEEP_RATIOS = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)  # gap / eps values of the sweep
MAX_SWEEP_RATIOS = 64

_FEATURES = 8  # token features of the shared network
_HIDDEN = 16  # hidden units of the shared network
_MAX_UPDATES = 20_000
_DTYPE = torch.float64

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class SimConfig:
    """One simulated training run. Every field is a plain number or string (cache and URL friendly)."""

    critic: str = "table"
    loss: str = "verl"
    eps: float = 0.5
    gap: float = 4.0
    noise: float = 0.3
    lr: float = 0.5
    optimizer: str = "sgd"
    n_tokens: int = 16
    n_rollouts: int = 12
    n_epochs: int = 4
    n_minibatches: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        check.choice("critic", self.critic, CRITICS)
        check.choice("loss", self.loss, LOSS_FORMS)
        check.choice("optimizer", self.optimizer, OPTIMIZERS)
        check.clip_range("eps", self.eps)
        check.finite_number("gap", self.gap, low=-1e4, high=1e4)
        check.finite_number("noise", self.noise, low=0.0, high=1e4)
        check.finite_number("lr", self.lr, low=0.0, high=100.0, low_open=True)
        check.whole_number("n_tokens", self.n_tokens, 2, 1024)
        check.whole_number("n_rollouts", self.n_rollouts, 1, 500)
        check.whole_number("n_epochs", self.n_epochs, 1, 64)
        check.whole_number("n_minibatches", self.n_minibatches, 1, self.n_tokens)
        check.whole_number("seed", self.seed, 0, 2**31 - 1)
        updates = self.n_rollouts * self.n_epochs * self.n_minibatches
        if updates > _MAX_UPDATES:
            raise ValueError(
                f"n_rollouts x n_epochs x n_minibatches = {updates} updates; the simulator is capped at "
                f"{_MAX_UPDATES}: lower one of them"
            )

    @property
    def n_updates(self) -> int:
        return self.n_rollouts * self.n_epochs * self.n_minibatches

    @property
    def form(self) -> LossForm:
        return loss_form(self.loss)


@dataclass(frozen=True)
class SimResult:
    """Everything the page draws, as numpy arrays (U = updates, T = tokens, K = rollouts).

    ``values[u]`` is the critic before update ``u`` (``values[U]`` after the last one). Per-update
    logs (``vf_loss``, ``vf_clipfrac``, ``zero_grad_frac``) are measured on the update's minibatch
    before its step, as trainers log them. ``frozen[u, t]``: token t's own loss term had exactly
    zero gradient at the start of update u (the clipped term wins for the max form; outside the
    band for SB3's clip-only form). ``moved_while_frozen[u, t] = |values[u+1, t] - values[u, t]|``
    where ``frozen[u, t]``, else 0: movement that came from other tokens (shared parameters) or
    from optimizer momentum (Adam), never from the token's own gradient.
    """

    config: SimConfig
    v_true: np.ndarray  # (T,)
    values: np.ndarray  # (U + 1, T)
    v_old: np.ndarray  # (K, T)
    targets: np.ndarray  # (K, T)
    rollout: np.ndarray  # (U,) rollout index of each update
    epoch: np.ndarray  # (U,)
    minibatch: np.ndarray  # (U,)
    vf_loss: np.ndarray  # (U,)
    vf_clipfrac: np.ndarray  # (U,) verl's definition: share of minibatch tokens where L_clip > L_unclip
    zero_grad_frac: np.ndarray  # (U,) share of minibatch tokens whose own gradient is zero under this loss
    value_error: np.ndarray  # (U + 1,) RMSE of v against v_true
    explained_var: np.ndarray  # (U + 1,) 1 - Var(R - v) / Var(R), R of the current rollout
    frozen: np.ndarray  # (U, T) bool
    frozen_after: np.ndarray  # (U, T) bool: the same test for the state after update u (same rollout)
    moved_while_frozen: np.ndarray  # (U, T)
    remaining_gap: np.ndarray  # (K + 1,) mean(v_true - v) / gap, at the start and after each rollout
    baseline_value_error: np.ndarray  # (U + 1,) the same run without clipping (eps = infinity)
    baseline_remaining_gap: np.ndarray  # (K + 1,)
    tracked: tuple[int, ...] = field(default=())

    @property
    def rollouts_to_close(self) -> int | None:
        return _first_closed(self.remaining_gap, self.config.gap)

    @property
    def baseline_rollouts_to_close(self) -> int | None:
        return _first_closed(self.baseline_remaining_gap, self.config.gap)

    @property
    def max_moved_while_frozen(self) -> float:
        return float(self.moved_while_frozen.max()) if self.moved_while_frozen.size else 0.0

    @property
    def max_beyond_band(self) -> np.ndarray:
        """(T,) the furthest each token got past its band edge, ``max(|v - v_old| - eps, 0)``."""
        past = np.abs(self.values[1:] - self.v_old[self.rollout]) - self.config.eps
        return np.clip(past, 0.0, None).max(axis=0)


@dataclass(frozen=True)
class Sweep:
    """Rollouts needed to close the gap for several eps (``nan``: not closed within ``max_rollouts``)."""

    config: SimConfig
    ratios: np.ndarray  # gap / eps
    eps: np.ndarray
    rollouts: np.ndarray  # float, nan where not closed
    max_rollouts: int
    unclipped_rollouts: float  # nan where the unclipped run did not close either


def _first_closed(remaining: np.ndarray, gap: float) -> int | None:
    if gap == 0:
        return 0
    done = np.flatnonzero(remaining <= 1.0 - CLOSE_FRACTION)
    return int(done[0]) if done.size else None


def loss_rows(form: str, v: torch.Tensor, R: torch.Tensor, v_old: torch.Tensor, eps: torch.Tensor):
    """Per-row loss, verl clip fraction and zero-gradient mask for rows of one minibatch.

    ``v, R, v_old`` are ``(S, m)``; ``eps`` is ``(S, 1)`` (one clip range per row; ``inf`` = no clip).
    Each row is the library's loss of a one-row batch of real tokens: its clip convention, its combine rule
    (the max of both squared errors, with torch's or TensorFlow's rule at a tie, or the clipped term alone),
    its mean and its 0.5 where it has one. The clip fraction is verl's vf_clipfrac for every form.
    Returns ``(loss (S,), clipfrac (S,), zero_grad (S, m) bool)``.
    """
    f = loss_form(form)
    loss_unclipped = (v - R) ** 2
    loss_clipped = (clip_prediction(v, v_old, eps, f.clip_convention) - R) ** 2
    # verl's vf_clipfrac, as verl computes it (its bounds clip returns v itself inside the band; the delta clip
    # may sit an ulp off v there, and a fraction logged from it would count those rounding ties).
    verl_wins = torch.gt((clip_prediction(v, v_old, eps, "bounds") - R) ** 2, loss_unclipped)
    clipfrac = verl_wins.to(v.dtype).mean(dim=-1)
    outside = (v - v_old).abs() > eps  # where clip(v) is a constant: the clipped term has no gradient
    if f.combine_rule == "max":
        per_token = (
            tf_maximum(loss_unclipped, loss_clipped)
            if f.tie_rule == "tensorflow"
            else torch.max(loss_unclipped, loss_clipped)
        )
        zero_grad = outside & torch.gt(loss_clipped, loss_unclipped)  # the constant clipped term wins
    elif f.combine_rule == "clip-only":
        per_token = loss_clipped
        zero_grad = outside  # whichever way v went
    else:
        per_token = loss_unclipped
        zero_grad = torch.zeros_like(outside)
    loss = per_token.mean(dim=-1)
    return (0.5 * loss if f.half else loss), clipfrac, zero_grad


class _Critic:
    """S independent critics (one per row) in batched tensors, so one optimizer step trains all."""

    def __init__(self, kind: str, n_rows: int, n_tokens: int, gen: torch.Generator) -> None:
        self.kind = kind
        if kind == "table":
            self.params = [torch.zeros(n_rows, n_tokens, dtype=_DTYPE, requires_grad=True)]
            self.features = None
            return
        features = torch.randn(n_tokens, _FEATURES, generator=gen, dtype=_DTYPE)
        w1 = torch.randn(_FEATURES, _HIDDEN, generator=gen, dtype=_DTYPE) / math.sqrt(_FEATURES)
        w2 = torch.randn(_HIDDEN, 1, generator=gen, dtype=_DTYPE) / math.sqrt(_HIDDEN)
        self.features = features
        self.params = [
            w1.expand(n_rows, -1, -1).clone().requires_grad_(True),
            torch.zeros(n_rows, 1, _HIDDEN, dtype=_DTYPE, requires_grad=True),
            (0.5 * w2).expand(n_rows, -1, -1).clone().requires_grad_(True),
            torch.zeros(n_rows, 1, dtype=_DTYPE, requires_grad=True),
        ]

    def __call__(self) -> torch.Tensor:
        """Values of every token, shape (S, T)."""
        if self.kind == "table":
            return self.params[0]
        w1, b1, w2, b2 = self.params
        assert self.features is not None  # every kind but "table" has its features
        hidden = torch.tanh(self.features @ w1 + b1)  # (S, T, H)
        return (hidden @ w2).squeeze(-1) + b2


def _optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    return torch.optim.Adam(params, lr=lr)


def _explained_variance(R: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    var_r = R.var(dim=-1, unbiased=False)
    ev = 1.0 - (R - v).var(dim=-1, unbiased=False) / var_r
    return torch.where(var_r > 0, ev, torch.full_like(ev, float("nan")))


def _run(
    cfg: SimConfig,
    eps_rows: torch.Tensor,
    n_rollouts: int,
    *,
    record: bool,
    progress: Progress | None = None,
    stop_when_closed: bool = False,
):
    """Train ``len(eps_rows)`` critics side by side; return per-row traces (numpy)."""
    init_gen = torch.Generator().manual_seed(cfg.seed)
    noise_gen = torch.Generator().manual_seed(cfg.seed + 1)
    order_gen = torch.Generator().manual_seed(cfg.seed + 2)

    n_rows, n_tok = eps_rows.shape[0], cfg.n_tokens
    critic = _Critic(cfg.critic, n_rows, n_tok, init_gen)
    gaps = cfg.gap * torch.linspace(0.5, 1.5, n_tok, dtype=_DTYPE)
    gaps = gaps[torch.randperm(n_tok, generator=init_gen)]
    with torch.no_grad():
        v_init = critic()[0].detach().clone()
    v_true = v_init + gaps
    opt = _optimizer(cfg.optimizer, critic.params, cfg.lr)
    eps_col = eps_rows.reshape(n_rows, 1).to(_DTYPE)

    gap_scale = cfg.gap if cfg.gap != 0 else 1.0
    remaining = [((v_true - v_init).mean() / gap_scale).expand(n_rows).clone()]
    logs: dict[str, list] = {k: [] for k in ("values", "v_old", "targets", "loss", "clipfrac", "zero", "frozen", "ev")}
    if record:
        logs["values"].append(v_init.expand(n_rows, -1).clone())

    blow_up = 1e3 * (abs(cfg.gap) + cfg.noise + 1.0)
    diverged_at = torch.full((n_rows,), -1, dtype=torch.long)
    for k in range(n_rollouts):
        R = (v_true + cfg.noise * torch.randn(n_tok, generator=noise_gen, dtype=_DTYPE)).expand(n_rows, -1)
        with torch.no_grad():
            v_old = critic().detach().clone()
        if record:
            logs["v_old"].append(v_old)
            logs["targets"].append(R[0])
            logs["ev"].append(_explained_variance(R, v_old))
        for _epoch in range(cfg.n_epochs):
            perm = torch.randperm(n_tok, generator=order_gen)
            for idx in torch.tensor_split(perm, cfg.n_minibatches):
                v_all = critic()
                loss, clipfrac, zero = loss_rows(cfg.loss, v_all[:, idx], R[:, idx], v_old[:, idx], eps_col)
                if record:  # every token's own-gradient state, before the step moves anything
                    with torch.no_grad():
                        _, _, frozen_all = loss_rows(cfg.loss, v_all.detach(), R, v_old, eps_col)
                opt.zero_grad(set_to_none=False)
                loss.sum().backward()
                opt.step()
                if record:
                    with torch.no_grad():
                        v_after = critic().detach().clone()
                    logs["loss"].append(loss.detach())
                    logs["clipfrac"].append(clipfrac.detach())
                    logs["zero"].append(zero.to(_DTYPE).mean(dim=-1))
                    logs["frozen"].append(frozen_all)
                    logs["values"].append(v_after)
                    logs["ev"].append(_explained_variance(R, v_after))
        with torch.no_grad():
            v_now = critic().detach()
            bad = ~torch.isfinite(v_now).all(dim=-1) | ((v_now - v_true).abs() > blow_up).any(dim=-1)
            for row in torch.nonzero(bad & (diverged_at < 0)).flatten().tolist():
                diverged_at[row] = k
                for p in critic.params:  # park the row on NaN: no overflow, other rows unaffected
                    p[row] = math.nan
            v_now = critic().detach()
        remaining.append((v_true - v_now).mean(dim=-1) / gap_scale)
        if progress is not None:
            progress((k + 1) / n_rollouts, f"rollout {k + 1} of {n_rollouts}")
        if stop_when_closed and bool((remaining[-1] <= 1.0 - CLOSE_FRACTION).all()):
            break

    out = {
        "v_true": v_true.numpy(),
        "remaining": torch.stack(remaining, dim=-1).numpy(),
        "diverged_at": diverged_at.numpy(),
    }
    if record:
        out.update(
            values=torch.stack(logs["values"], dim=1).numpy(),  # (S, U+1, T)
            v_old=torch.stack(logs["v_old"], dim=1).numpy(),  # (S, K, T)
            targets=torch.stack(logs["targets"]).numpy(),  # (K, T)
            vf_loss=torch.stack(logs["loss"], dim=1).numpy(),  # (S, U)
            vf_clipfrac=torch.stack(logs["clipfrac"], dim=1).numpy(),
            zero_grad_frac=torch.stack(logs["zero"], dim=1).numpy(),
            frozen=torch.stack(logs["frozen"], dim=1).numpy(),  # (S, U, T)
            ev=torch.stack(logs["ev"], dim=1).numpy(),  # (S, K + U)
        )
    return out


def _tracked_tokens(v_true: np.ndarray, values0: np.ndarray) -> tuple[int, ...]:
    """The tokens with the smallest, the median and the largest gap: three typical trajectories."""
    order = np.argsort(v_true - values0, kind="stable")
    picks = [int(order[0]), int(order[len(order) // 2]), int(order[-1])]
    return tuple(dict.fromkeys(picks))


def simulate(config: SimConfig | None = None, *, progress: Progress | None = None, **overrides) -> SimResult:
    """Run one seeded training (plus the same run without clipping, as a baseline row).

    ``simulate(SimConfig(...))`` or ``simulate(eps=0.2, critic="shared")``. Deterministic: the same
    configuration gives bit-identical arrays. ``progress(fraction, message)`` is called per rollout.
    """
    if config is None:
        config = SimConfig(**overrides)
    elif overrides:
        config = SimConfig(**{**asdict(config), **overrides})
    if not isinstance(config, SimConfig):
        raise TypeError(f"config must be a SimConfig, got {type(config).__name__}")
    eps_rows = torch.tensor([float(config.eps), math.inf], dtype=_DTYPE)
    out = _run(config, eps_rows, config.n_rollouts, record=True, progress=progress)
    if out["diverged_at"][0] >= 0:
        raise ValueError(
            f"the critic diverged in rollout {out['diverged_at'][0] + 1} (lr = {config.lr} is too large for "
            f"{config.critic} + {config.optimizer}); lower lr: SGD on the shared network is stable up to about 0.3, "
            "the table up to about 4, Adam from 0.01 to 0.3"
        )

    values = out["values"][0]
    frozen = out["frozen"][0]
    moved = np.where(frozen, np.abs(np.diff(values, axis=0)), 0.0)
    per_rollout = config.n_epochs * config.n_minibatches
    updates = np.arange(config.n_updates)
    # explained variance: logged at each rollout start (v = v_old) and after each update; keep the
    # value before the first update and after each update
    ev_all = out["ev"][0]
    keep = [0] + [k * (per_rollout + 1) + 1 + j for k in range(config.n_rollouts) for j in range(per_rollout)]
    rollout = updates // per_rollout
    with torch.no_grad():
        _, _, frozen_after = loss_rows(
            config.loss,
            torch.from_numpy(values[1:]),
            torch.from_numpy(out["targets"][rollout]),
            torch.from_numpy(out["v_old"][0][rollout]),
            torch.tensor(float(config.eps), dtype=_DTYPE),
        )
    base_values = out["values"][1]
    with np.errstate(all="ignore"):  # a diverged baseline row holds inf / NaN
        base_error = np.sqrt(((base_values - out["v_true"]) ** 2).mean(axis=1))
    return SimResult(
        config=config,
        v_true=out["v_true"],
        values=values,
        v_old=out["v_old"][0],
        targets=out["targets"],
        rollout=rollout,
        epoch=(updates % per_rollout) // config.n_minibatches,
        minibatch=updates % config.n_minibatches,
        vf_loss=out["vf_loss"][0],
        vf_clipfrac=out["vf_clipfrac"][0],
        zero_grad_frac=out["zero_grad_frac"][0],
        value_error=np.sqrt(((values - out["v_true"]) ** 2).mean(axis=1)),
        explained_var=ev_all[keep],
        frozen=frozen,
        frozen_after=frozen_after.numpy(),
        moved_while_frozen=moved,
        remaining_gap=out["remaining"][0],
        baseline_value_error=base_error,
        baseline_remaining_gap=out["remaining"][1],
        tracked=_tracked_tokens(out["v_true"], values[0]),
    )


def sweep_eps(
    config: SimConfig,
    ratios=SWEEP_RATIOS,
    *,
    max_rollouts: int | None = None,
    progress: Progress | None = None,
) -> Sweep:
    """Rollouts needed to close ``CLOSE_FRACTION`` of the gap for ``eps = |gap| / ratio``.

    All eps run as rows of one batched simulation (same targets and shuffles as ``simulate``),
    plus an unclipped row. The ~``gap / eps`` rule predicts ``rollouts ≈ ratio``.
    """
    if not isinstance(config, SimConfig):
        raise TypeError(f"config must be a SimConfig, got {type(config).__name__}")
    if config.gap == 0:
        raise ValueError("gap must be nonzero to measure how many rollouts close it")
    ratios = np.asarray(ratios, dtype=np.float64)
    if ratios.ndim != 1 or ratios.size == 0 or not np.all(np.isfinite(ratios)) or np.any(ratios <= 0):
        raise ValueError("ratios must be a non-empty list of finite numbers > 0 (gap / eps)")
    if ratios.size > MAX_SWEEP_RATIOS:  # each ratio is one more row of the batched simulation
        raise ValueError(f"ratios holds {ratios.size:,} values; at most {MAX_SWEEP_RATIOS} (gap / eps) are swept")
    if max_rollouts is None:
        max_rollouts = int(math.ceil(1.5 * ratios.max())) + 6
    check.whole_number("max_rollouts", max_rollouts, 1, 500)
    eps = abs(config.gap) / ratios
    eps_rows = torch.tensor([*eps.tolist(), math.inf], dtype=_DTYPE)
    out = _run(config, eps_rows, max_rollouts, record=False, progress=progress, stop_when_closed=True)
    rollouts = []
    for row in out["remaining"]:
        closed = _first_closed(row, config.gap)
        rollouts.append(np.nan if closed is None else float(closed))
    return Sweep(
        config=config,
        ratios=ratios,
        eps=eps,
        rollouts=np.asarray(rollouts[:-1]),
        max_rollouts=max_rollouts,
        unclipped_rollouts=rollouts[-1],
    )


# ------------------------------------------------------------------------------------------------
# What the page says about a run, generated from its numbers


def first_step_share(form: str) -> Fraction:
    """The share of its own unclipped gradient that ``form`` passes on the first minibatch of a rollout at eps = 0.

    There v = v_old, both terms tie and (eps = 0) both band edges sit on v: what reaches v is decided by the
    form's clip convention, combine rule and tie rule (verl's bounds clip passes 1/2 + 1/8 = 5/8, torch.clamp
    and the delta clip the whole gradient, TensorFlow's tf.maximum all of it through the unclipped term).
    Measured by autograd on the simulator's own loss.
    """
    f = loss_form(form)
    v = torch.zeros(1, 1, dtype=_DTYPE, requires_grad=True)
    R, v_old, eps = torch.ones(1, 1, dtype=_DTYPE), torch.zeros(1, 1, dtype=_DTYPE), torch.zeros(1, 1, dtype=_DTYPE)
    loss, _, _ = loss_rows(form, v, R, v_old, eps)
    (grad,) = torch.autograd.grad(loss.sum(), v)
    plain = (1.0 if f.half else 2.0) * float(v.detach() - R)  # d/dv of (½ or 1) · (v − R)²
    return Fraction(float(grad) / plain).limit_denominator(64)


def _share_words(share: Fraction) -> str:
    return "the whole gradient" if share == 1 else f"{share.numerator}/{share.denominator} of its gradient"


def _first_step_reason(form: LossForm) -> str:
    if form.combine_rule == "max":
        return tie_split(form.clip_convention, 0.0, 0.0, 0.0, form.tie_rule).reason
    return f"its loss is the clipped term alone, and its {form.clip_convention} clip passes the gradient at the edge"


def rule_of_thumb(cfg: SimConfig) -> tuple[str, str, str]:
    """The rule the run is compared with: (metric label, what it shows, why), for this configuration.

    With eps > 0 a token moves about eps toward R per rollout, so a gap G takes about G / eps rollouts.
    With eps = 0 that quotient is infinite, yet the critic still learns: only on the first minibatch of
    each rollout, where v = v_old and nothing is clipped, so it moves one optimizer step per rollout.
    """
    if not isinstance(cfg, SimConfig):
        raise TypeError(f"cfg must be a SimConfig, got {type(cfg).__name__}")
    form = cfg.form
    if form.combine_rule is None:
        return (
            "rule of thumb: rollouts",
            "no clip",
            "Without clipping nothing limits how far v moves per rollout: only the optimizer does.",
        )
    if cfg.eps > 0:
        return (
            "rule of thumb: rollouts",
            f"{abs(cfg.gap) / cfg.eps:.1f}",
            "gap / eps: within a rollout v_old is fixed, so a token moves about eps toward R per rollout.",
        )
    share = first_step_share(cfg.loss)
    return (
        "rule of thumb: per rollout",
        "1 step",
        "gap / eps is infinite with eps = 0, but the critic still learns: on the first minibatch of each rollout "
        f"v = v_old and the terms tie, and {form.label} ({form.formula}) passes {_share_words(share)} there: "
        f"{_first_step_reason(form)}. After that one step every move toward R has zero gradient. So each rollout "
        "moves a token by one optimizer step (set by the learning rate), not by eps.",
    )


def same_step_twin(cfg: SimConfig) -> SimConfig | None:
    """For a clip-only form (SB3): the max form of the same clip convention and tie rule (the registry's first
    current entry), at the learning rate that takes the same size of step (a loss without ½ steps twice as far
    as one with it). None for the other forms."""
    form = cfg.form
    if form.combine_rule != "clip-only":
        return None
    twin = next(
        name
        for name in LOSS_FORMS
        if (t := loss_form(name)).combine_rule == "max"
        and (t.clip_convention, t.tie_rule) == (form.clip_convention, form.tie_rule)
    )
    factor = {(False, True): 2.0, (True, False): 0.5}.get((form.half, loss_form(twin).half), 1.0)
    return replace(cfg, loss=twin, lr=factor * cfg.lr)


def same_step_note(result: SimResult, twin: SimResult) -> str:
    """A clip-only run against its max-form twin, like with like: the sentence beside the result, from both runs."""
    cfg, tcfg = result.config, twin.config
    if tcfg != same_step_twin(cfg):
        raise ValueError("twin must be the same_step_twin of a clip-only run")
    a_form, b_form = cfg.form, tcfg.form
    a_name, b_name = a_form.short, b_form.short

    def rollouts(r: SimResult) -> str:
        n = r.rollouts_to_close
        return f"{n} rollouts" if n is not None else f"more than {r.config.n_rollouts} rollouts"

    text = ""
    if a_form.half != b_form.half:
        has, other = ("no ½", "one") if b_form.half else ("a ½", "none")
        text = (
            f"{a_name}'s loss ({a_form.formula}) has {has} where {b_name}'s ({b_form.formula}) has {other}, so at one "
            f"learning rate {a_name}'s steps are {'twice' if b_form.half else 'half'} {b_name}'s. "
        )
    text += (
        f"Like with like: {a_name} at lr {cfg.lr:g} closed {CLOSE_FRACTION:.0%} of the gap in {rollouts(result)}; "
        f"{b_name} at lr {tcfg.lr:g}, the same step size, in {rollouts(twin)}."
    )
    if result.rollouts_to_close == twin.rollouts_to_close:
        text += (
            f" So {a_name}'s speed against {b_name} at lr {cfg.lr:g} is the step size, not the clip: here every token "
            "moves toward R, and both forms freeze the same tokens."
        )
    else:
        text += (
            f" With equal steps the difference left is the clip itself: {a_name} freezes every token outside the "
            f"band, {b_name} only those still nearer R than the band edge."
        )
    return text


def wall_caption(result: SimResult) -> str:
    """The caption under the moving wall: what to watch for this critic and optimizer, and the frozen share."""
    cfg = result.config
    frozen_share = float(result.frozen.mean())
    form = cfg.form
    if form.combine_rule is None:
        notice = (
            "Without clipping the band is only drawn for reference: nothing stops v, and no gradient is ever zeroed."
        )
    elif cfg.critic == "table" and cfg.optimizer == "sgd":
        what = (
            f"moved more than eps from v_old ({form.short}'s clip-only loss freezes every token outside the band)"
            if form.combine_rule == "clip-only"
            else "moved more than eps toward R while still nearer R than the band edge"
        )
        notice = (
            f"Press ▶. Each token walks toward R until it has {what}, then turns pink: its gradient is exactly 0 "
            "and, with one number per token and plain SGD, nothing else can move it until the next rollout resets "
            "v_old. One large step can still land past the band: the clip stops the gradient, it does not project "
            "v back."
        )
    elif cfg.critic == "shared":
        notice = (
            "Press ▶. Pink tokens have zero gradient of their own, yet they keep moving: the other tokens' gradients "
            "change the shared weights, and every token's value goes with them."
        )
    else:
        notice = (
            "Press ▶. With Adam a pink token (own gradient 0) keeps coasting: the optimizer's momentum carries the "
            "last steps on, so the band is crossed by more than one step."
        )
    return f"{notice} Tokens spent {frozen_share:.0%} of the updates with zero gradient."


def training_logs_caption(result: SimResult) -> str:
    """The caption under the training logs: what each panel is (the panel titles stay short enough for a phone)
    and how the clip fraction relates to the zero-gradient share in this run."""
    form = result.config.form
    loss = "the plain squared error (no clipping)" if form.combine_rule is None else f"{form.short}'s value loss"
    text = (
        "Explained variance is 1 − Var(R − v) / Var(R); vf_loss is "
        f"{loss} on the minibatch each update trains on; dotted lines: a new rollout (v_old resets). "
        + (
            "vf_clipfrac is 0 on the first minibatch of every rollout (v = v_old there) and climbs as tokens cross "
            "their band"
            if result.vf_clipfrac.any()
            else f"vf_clipfrac stays at 0 in this run: at eps = {result.config.eps:g} the clipped term never wins"
        )
    )
    if form.combine_rule == "max":
        return text + "; in this max form it equals the share of tokens with zero gradient."
    if form.combine_rule is None:
        return text + ", though without clipping no gradient is ever zeroed (the dashed line stays at 0)."
    differ = int((result.vf_clipfrac != result.zero_grad_frac).sum())
    text += (
        f". The dashed line is the share with zero gradient: {form.short} freezes every token outside its band, "
        "vf_clipfrac counts only those still nearer R than their band edge"
    )
    if differ:
        return text + f"; the two differ at {differ} of {result.config.n_updates} updates here."
    return text + "; here every token outside its band was, so the two lines coincide."


def pushed_while_frozen_note(result: SimResult) -> tuple[str, str] | None:
    """("pushed", text) when a token with zero gradient of its own still moved, ("frozen", text) when none did,
    None without clipping: the sentence states the largest such move and where it happened."""
    cfg = result.config
    moved = result.moved_while_frozen
    if moved.size and moved.max() > 0:
        u, t = np.unravel_index(int(np.argmax(moved)), moved.shape)
        why = "the shared weights moved" if cfg.critic == "shared" else "Adam's momentum carried it"
        return (
            "pushed",
            f"**Pushed while frozen.** At update {u + 1} token {t} had zero gradient of its own (it was "
            f"{'outside its band' if cfg.form.combine_rule == 'clip-only' else 'past its band toward R'}), yet it moved {moved[u, t]:.3f}: {why}. The furthest any token got past its band edge "
            f"was {result.max_beyond_band.max():.3f} (eps = {cfg.eps:g}).",
        )
    if cfg.form.combine_rule is None:
        return None
    return (
        "frozen",
        "**Frozen means frozen here.** Every update that began with a token's own gradient at 0 left that token "
        "exactly where it was (total movement 0.0). Switch to the shared network or to Adam to see that break.",
    )
