"""An example run to try the page without logs of your own: SIMULATED by valueloss (a seeded random walk
shaped like the patterns users report), written in verl's file-backend format. Not a real training run."""

from __future__ import annotations

import json
import math

import numpy as np

__all__ = ["EXAMPLE_NAME", "EXAMPLE_NOTE", "example_run_jsonl"]

EXAMPLE_NAME = "example-simulated-verl-run.jsonl"
EXAMPLE_NOTE = (
    "Simulated by valueloss, not a real training run: a seeded random walk in verl's file-backend format whose "
    "critic lags from step 150 (clip fraction above the band), drifts from the returns from step 260 and whose "
    "value loss blows up from step 330."
)


def example_run_jsonl(steps: int = 400, seed: int = 0) -> bytes:
    """The example run as verl's ``file`` backend writes it: ``{"step": n, "data": {...}}`` per line, NaN as null."""
    rng = np.random.default_rng(seed)
    lines = []
    for step in range(1, steps + 1):
        lag = step >= 150
        drift = max(0, step - 260) / 40.0
        blow = max(0, step - 330)
        ret_mean = 0.55 + 0.05 * math.tanh(step / 100) + 0.01 * rng.standard_normal()
        ret_min, ret_max = -0.05 + 0.01 * rng.standard_normal(), 1.05 + 0.01 * rng.standard_normal()
        val_mean = ret_mean - 0.05 + drift + 0.02 * rng.standard_normal()
        loss = 0.08 * (1.0 - 0.4 * math.tanh(step / 80)) * 10 ** (blow / 25) * math.exp(0.1 * rng.standard_normal())
        ev = min(0.7, step / 150) - (0.9 * drift if drift else 0) + 0.03 * rng.standard_normal()
        data = {
            "critic/vf_loss": loss if step < 385 else None,
            "critic/vf_clipfrac": max(0.0, (0.35 if lag else 0.04) + 0.02 * rng.standard_normal()),
            "critic/vpred_mean": val_mean + 0.01,
            "critic/grad_norm": abs(2.0 * 10 ** (blow / 40) + 0.2 * rng.standard_normal()),
            "critic/vf_explained_var": ev,
            "critic/returns/mean": ret_mean,
            "critic/returns/max": ret_max,
            "critic/returns/min": ret_min,
            "critic/values/mean": val_mean,
            "critic/values/max": val_mean + 0.6 + drift,
            "critic/values/min": val_mean - 0.6 - drift,
            "critic/score/mean": ret_mean,
            "actor/pg_loss": 0.01 * rng.standard_normal(),
            "actor/pg_clipfrac": abs(0.002 * rng.standard_normal()),
            "response_length/mean": 250.0 + 10 * rng.standard_normal(),
            "timing_s/gen": 10.0 + rng.random(),
        }
        lines.append(json.dumps({"step": step, "data": data}, allow_nan=False))
    return ("\n".join(lines) + "\n").encode()
