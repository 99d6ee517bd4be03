"""The Batch page's words: the verdict's label, what the histograms show, how the aggregation modes weigh
tokens, and the captions, each written from the numbers the page shows (through ``advice.shown``).

The histogram reading is built from the same evidence as the verdict and carries the same kind of claims,
so a test can check that the two never disagree (an inactive clip is never also a clip that sets the
critic's pace)."""

from __future__ import annotations

from dataclasses import replace

from .advice import LAG_ROLLOUTS, NOISE_MEDIAN_SIGMAS, Advice, Evidence, Finding, Quote, shown

__all__ = [
    "METRIC_HELP",
    "LABELS",
    "labelled",
    "batch_caption",
    "yardstick_name",
    "yardstick_caption",
    "non_finite_warning",
    "histogram_reading",
    "aggregation_reading",
    "token_caption",
    "dialect_caption",
]

METRIC_HELP = {
    "loss clip fraction": "verl's vf_clipfrac (TRL logs the same): share of real tokens where the clipped term wins.",
    "prediction clip fraction": "Share with |v − v_old| > eps (what slime and TorchRL count). Never smaller than the "
    "loss clip fraction: it also counts tokens that moved away from R, or overshot R by more than the band edge "
    "falls short of it, which keep their gradient.",
    "zero-gradient share": "Share of real tokens whose d loss / d v is exactly 0: the loss-clipped tokens, plus any "
    "at v = R.",
    "vf_loss": "verl's compute_value_loss on this batch with this eps and aggregation mode.",
}

# The Batch page names a verdict by what it means for the batch: the severity, or the row where it says more.
LABELS = {"ok": "Typical", "warning": "Alarming", "info": "Note"}
CODE_LABELS = {"first-step": "Uninformative", "never-acts": "Inactive", "clamp-never-acts": "Inactive"}


def labelled(advice: Advice) -> Advice:
    """The verdict titled for the Batch page: "Typical: ...", "Alarming: ...", "Inactive: ..."."""
    label = CODE_LABELS.get(advice.code, LABELS[advice.severity])
    return replace(advice, title=f"{label}: {advice.title}")


def batch_caption(n_tokens: int, n_rows: int, width: int, shortest: int, longest: int) -> str:
    return f"{n_tokens:,} real tokens in {n_rows} sequences (padded width {width}); lengths {shortest} to {longest}."


def yardstick_name(reference: float) -> str:
    """How the Batch page's verdict names its target."""
    return f"the {shown('target', reference)} yardstick"


def yardstick_caption(reference: float) -> str:
    return (
        f"Judged against a {shown('target', reference)} yardstick for verl's vf_clipfrac; set your own target on "
        "the Sanity check page."
    )


def non_finite_warning(real: int, padding: int) -> str:
    return (
        f"Non-finite values: {real} on real tokens, {padding} in padding. The aggregation and library tables below "
        "show which losses they poison."
    )


def histogram_reading(evidence: Evidence, loss: float, prediction: float, largest_move: float) -> Finding:
    """What the two histograms show (Δ = v − v_old with the band, R − v_old), from the verdict's evidence.

    ``loss`` and ``prediction`` are this batch's clip fractions at eps; ``largest_move`` is max |Δ|."""
    q = Quote()
    eps = evidence.eps
    away = max(prediction - loss, 0.0)
    gap = evidence.median_gap
    offset = (
        abs(evidence.returns.mean - evidence.values.mean)
        if evidence.returns.mean is not None and evidence.values.mean is not None
        else None
    )
    if evidence.first_step:
        return Finding(
            "info",
            "What to notice",
            "Every token has v == v_old: the critic has not moved since the rollout, so nothing is outside the band "
            "(left) and no eps can clip anything yet. On the right, the gap R − v_old is what the coming mini-steps "
            "will start to close.",
            claims=(("clipping", "cannot act yet"),),
        )
    if eps == 0:
        return Finding(
            "info",
            "What to notice",
            f"With eps = 0 the band has no width: {q('prediction', prediction)} of tokens moved at all (left), and the "
            f"{q('clip', loss)} that moved toward R get zero gradient. The critic still learns, one optimizer step per "
            "rollout: on the first mini-step after each rollout v == v_old and nothing is clipped; after that every "
            "move toward R is frozen. Its pace is set by the learning rate, not by eps (the Critic dynamics page "
            "shows it).",
            numbers=tuple(q.numbers.items()),
            claims=(("pace", "one optimizer step per rollout"),),
        )
    if loss == 0:
        acts = evidence.reading.acts_below if evidence.reading is not None else None
        below = f"; it would act below eps = {q('acts_below', acts)}" if acts else ""
        moved = (
            f"No token moved more than eps = {q('eps', eps)} (the largest |Δ| is {q('largest_move', largest_move)}), "
            f"so clipping never acts at this eps{below}."
            if prediction == 0
            else f"{q('prediction', prediction)} of tokens moved more than eps, but none toward R while staying nearer "
            "R than the band edge, so none is frozen: max() keeps pulling every one of them back."
        )
        right = f" On the right, the median gap |R − v_old| is {q('median_gap', gap)}." if gap is not None else ""
        return Finding(
            "info",
            "What to notice",
            f"{moved}{right} The band is wider than the moves that matter, so it does not limit how fast the critic "
            "closes the gap: the learning rate does.",
            numbers=tuple(q.numbers.items()),
            claims=(("clipping", "never acts"), ("pace", "not limited by the clip")),
        )
    first = (
        f"{q('prediction', prediction)} of tokens moved more than eps (outside the shaded band, left). "
        f"{q('clip', loss)} moved toward R and are still nearer R than the band edge: the clipped term wins and their "
        f"gradient is zero. The other {q('away', away)} moved away from R, or overshot R by more than the band edge "
        "falls short of it, and max() keeps pulling them back."
    )
    if gap is None:
        return Finding("info", "What to notice", first, numbers=tuple(q.numbers.items()))
    lag = gap / eps
    shared = (
        f" The part every token shares, the offset |mean(R) − mean(v_old)| = {q('offset', offset)}, is "
        f"{q('offset_lag', offset / eps)} × eps: the critic needs at least {q('offset_lag', offset / eps)} rollouts "
        "for it."
        if offset is not None
        else ""
    )
    pace = "A token moves at most about eps toward R per rollout" + (
        " (the clip sets the critic's pace here)" if lag >= LAG_ROLLOUTS else ""
    )
    return Finding(
        "info",
        "What to notice",
        f"{first} On the right, the median gap |R − v_old| is {q('median_gap', gap)}, about {q('lag', lag)} × eps. "
        f"{pace}, so the critic needs at most about {q('lag', lag)} rollouts to catch up. That is an upper bound: the "
        "gap includes the returns' own noise, which no critic removes (a critic predicting E[R] exactly still shows "
        f"a median gap of about {NOISE_MEDIAN_SIGMAS:.2f} noise stds).{shared}",
        numbers=tuple(q.numbers.items()),
        claims=(("pace", "about eps per rollout"),),
    )


def aggregation_reading(short_len: int, long_len: int, short_over_long: float) -> str:
    """How seq-mean-token-mean favours short answers, from the aggregation table's numbers."""
    return (
        "Each bar is the weight d AGG / d L_token that a mode gives one token (verl's vf_loss multiplies it by 0.5); "
        f"the label is short / long. Only **seq-mean-token-mean** favours short answers: one of the {short_len} "
        f"tokens of the shortest sequence counts ×{short_over_long:.3g} one of the {long_len} tokens of the longest. "
        "The other modes weight every token alike, so long answers dominate the critic's gradient; they differ only "
        "in overall scale (token-sum grows with the batch, seq-mean-token-sum-norm divides by the padded width)."
    )


def token_caption(shown_rows: int, n_tokens: int) -> str:
    return f"The first {shown_rows} of {n_tokens:,} real tokens, row by row."


def dialect_caption(without_half: list[str]) -> str:
    return (
        "Same batch, same eps; each row names the releases it describes. Losses differ by the 0.5 factor "
        f"({', '.join(without_half)} have none), by the aggregation (slime averages per sequence), by the combine rule "
        "(SB3 clips without max, TorchRL uses Huber) and by what eps means: RLlib's vf_clip_param (since ray 1.12) "
        "bounds the squared error, so it gets its own value. What each logged number is (last minibatch or an "
        "average, coefficients included) is in the registry: `valueloss.DIALECTS[name].logged`."
    )
