"""One palette and one notation for every figure, equation and page (core: no plotting library).

It sits below ``teach`` (coloured equations) and ``viz`` (figures) alike, so neither imports the other
for it. Okabe-Ito colours (safe for the common forms of colour blindness); every trace is also told apart
by dash or marker, so the figures still read in greyscale.
"""

from __future__ import annotations

from . import anatomy

COLORS = {
    "unclipped": "#0072B2",  # blue: (v - R)^2
    "clipped": "#E69F00",  # orange: (clip(v) - R)^2
    "max": "#000000",  # black: the loss the trainer uses
    "band": "#56B4E9",  # sky blue: trust band [v_old - eps, v_old + eps]
    "v_old": "#009E73",  # green: the old value
    "R": "#D55E00",  # vermillion: the return target
    "zero_grad": "#CC79A7",  # reddish purple: where the gradient is zero
    "current": "#000000",  # black marker: the current v
    "tie": "#F0E442",  # yellow: exact ties
    "neutral": "#999999",
}

DASHES = {
    "unclipped": "solid",
    "clipped": "dash",
    "max": "solid",
    "v_old": "dot",
    "R": "dashdot",
    "band_edge": "longdash",
}

WIDTHS = {"unclipped": 2, "clipped": 2, "max": 4, "v_old": 2, "R": 2, "band_edge": 1}

SYMBOLS = {"current": "circle", "v_old": "diamond", "R": "star", "tie": "x"}

BAND_FILL = "rgba(86, 180, 233, 0.18)"
ZERO_GRAD_FILL = "rgba(204, 121, 167, 0.25)"

# Five regions, five Okabe-Ito hues that no two share a family: sky blue (inside, the band's colour),
# reddish purple (zero gradient), bluish green (moved away), vermillion (overshot), yellow (tie).
REGION_COLORS = {
    anatomy.REGION_INSIDE: "#56B4E9",
    anatomy.REGION_ZERO_GRAD: "#CC79A7",
    anatomy.REGION_AWAY: "#009E73",
    anatomy.REGION_OVERSHOT: "#D55E00",
    anatomy.REGION_TIE: "#F0E442",
    anatomy.REGION_NAN: "#999999",
}

# The sign of a gradient: Okabe-Ito blue (< 0, a descent step raises v) through white to orange (> 0, it
# lowers v). Neither end is near the reddish purple that marks an exact zero on the same maps.
DIVERGING = [[0.0, "#0072B2"], [0.5, "#f7f7f7"], [1.0, "#E69F00"]]
REGION_NAMES = anatomy.REGION_LABELS

NOTATION = (
    ("v", "current critic prediction (vpreds)", "max"),
    ("v_old", "old value stored at rollout (values)", "v_old"),
    ("R", "return target (GAE advantages + v_old)", "R"),
    ("eps", "clip range, in return units (cliprange_value)", "band"),
    ("Δ = v − v_old", "how far the critic moved since the rollout", "neutral"),
    ("L_unclip = (v − R)²", "unclipped term", "unclipped"),
    ("L_clip = (clip(v) − R)²", "clipped term", "clipped"),
    ("max(L_unclip, L_clip)", "the loss the trainers use", "max"),
    ("zero gradient", "clipped term wins: v went past the band toward R and is nearer R than the edge", "zero_grad"),
)

_DASH_CSS = {"solid": "solid", "dash": "dashed", "dot": "dotted", "dashdot": "dashed", "longdash": "dashed"}


def legend_html() -> str:
    """The shared legend as small HTML (rendered by every page's sidebar)."""
    rows = []
    for symbol, meaning, key in NOTATION:
        style = _DASH_CSS.get(DASHES.get(key, "solid"), "solid")
        swatch = (
            f'<span style="display:inline-block;width:22px;height:0;border-top:3px {style} {COLORS[key]};'
            f'margin-right:6px;vertical-align:middle"></span>'
        )
        rows.append(f"<div style='font-size:0.82rem;line-height:1.5'>{swatch}<b>{symbol}</b>: {meaning}</div>")
    return "".join(rows)
