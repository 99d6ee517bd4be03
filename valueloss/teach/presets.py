"""Named one-token scenarios, each with the one thing a student should notice.

Used by the Explore page (preset buttons), the guided tour and the code export, so a scenario has
one name and one set of numbers everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Preset", "PRESETS", "get_preset"]


@dataclass(frozen=True)
class Preset:
    key: str  # URL-safe identifier
    title: str
    v_old: float
    R: float
    eps: float
    v: float
    notice: str  # one line: what to notice


PRESETS: dict[str, Preset] = {
    p.key: p
    for p in (
        Preset(
            "inside",
            "Inside the band",
            v_old=0.0,
            R=1.0,
            eps=0.2,
            v=0.1,
            notice="Both terms are equal inside the band, so the loss is the plain squared error and the gradient is 2(v - R).",
        ),
        Preset(
            "past-band-toward-R",
            "Moved past the band toward R",
            v_old=0.0,
            R=1.0,
            eps=0.2,
            v=0.5,
            notice="The clipped term wins and is flat in v: the gradient is exactly 0, so this token stops learning until the next rollout.",
        ),
        Preset(
            "moved-away",
            "Moved away from R",
            v_old=0.0,
            R=1.0,
            eps=0.2,
            v=-0.5,
            notice="The unclipped term wins: max() keeps the full gradient 2(v - R) that pulls v back toward R.",
        ),
        Preset(
            "overshot-frozen",
            "Overshot R, still frozen",
            v_old=0.0,
            R=1.0,
            eps=0.2,
            v=1.3,
            notice="v went past R = 1 by 0.3, less than the band edge 0.2 falls short of R (0.8): the clipped term "
            "still wins and the gradient is exactly 0. Only v beyond 2R - (v_old + eps) = 1.8 is pulled back.",
        ),
        Preset(
            "overshot",
            "Overshot R",
            v_old=0.0,
            R=0.3,
            eps=0.2,
            v=0.9,
            notice="v went past R = 0.3 by 0.6, more than the band edge 0.2 falls short of R (0.1): the unclipped "
            "term wins again and pulls v back.",
        ),
        Preset(
            "eps-zero",
            "eps = 0",
            v_old=0.0,
            R=1.0,
            eps=0.0,
            v=0.3,
            notice="With eps = 0 every move toward R (short of 2R - v_old) is clipped: after the first step the critic "
            "can only be pulled back, never forward, within an update.",
        ),
        Preset(
            "rlhf-verl",
            "RLHF-scale returns, verl's eps = 0.5",
            v_old=2.0,
            R=8.0,
            eps=0.5,
            v=3.0,
            notice="A return gap of 6 with eps = 0.5: the token is frozen after moving 0.5, so closing the gap takes about 12 rollouts.",
        ),
        Preset(
            "rlhf-trl",
            "RLHF-scale returns, TRL's eps = 0.2",
            v_old=2.0,
            R=8.0,
            eps=0.2,
            v=3.0,
            notice="Same gap with TRL's default 0.2: about 30 rollouts to catch up, and most tokens sit at zero gradient.",
        ),
        Preset(
            "normalised",
            "Normalised returns (std 1)",
            v_old=0.1,
            R=0.6,
            eps=0.2,
            v=0.25,
            notice="With returns scaled to unit std, eps = 0.2 is a fifth of a standard deviation: clipping is a gentle brake.",
        ),
    )
}


def get_preset(key: str) -> Preset:
    if key not in PRESETS:
        raise ValueError(f"unknown preset {key!r}; valid presets are: {', '.join(PRESETS)}")
    return PRESETS[key]
