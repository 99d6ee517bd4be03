"""Golden vectors for the registry's newer entries, in plain Python floats (no torch): each library's formula
as read at the commit its entry pins. Run from the repository root (python -m tests.unit.golden_registry_entries); adds keys to
tests/unit/golden.json."""

import json
import math
import struct

NAN = float("nan")
P = "tests/unit/golden.json"


def fl(x):
    return NAN if x is None else float(x)


def clip_delta(v, o, e):
    return o + min(max(v - o, -e), e)


def clip_clamp(v, o, e):
    return min(max(v, o - e), o + e)


def clip_bounds(v, o, e):
    return max(min(v, o + e), o - e)


def pymax(a, b):  # torch.max semantics: NaN propagates
    return NAN if (math.isnan(a) or math.isnan(b)) else max(a, b)


def huber(d):
    return 0.5 * d * d if abs(d) < 1 else abs(d) - 0.5


def float32(x):
    """x rounded to float32, as ClipPPOLoss stores clip_value (a float32 buffer)."""
    return struct.unpack("f", struct.pack("f", x))[0]


def out(x):
    return None if math.isnan(x) else x


def vectors(V, Rr, O, M, e) -> dict:
    """Every newer key for one case (lists of rows, NaN for a NaN input) at one eps."""
    cells = [(i, j) for i in range(len(V)) for j in range(len(V[0]))]
    real = [(i, j) for i, j in cells if M[i][j] != 0]
    n = len(real)

    def mx(clip, i, j):
        v, r, o = V[i][j], Rr[i][j], O[i][j]
        return pymax((v - r) ** 2, (clip(v, o, e) - r) ** 2)

    def mean_real(f):
        return sum(f(i, j) for i, j in real) / n

    def masked(f):  # NaN * 0 = NaN, as torch
        return sum(f(i, j) * M[i][j] for i, j in cells)

    def gt(i, j):
        v, r, o = V[i][j], Rr[i][j], O[i][j]
        return 1.0 if (clip_clamp(v, o, e) - r) ** 2 > (v - r) ** 2 else 0.0

    e32 = float32(e)

    def tr_loss(i, j):
        v, r, o = V[i][j], Rr[i][j], O[i][j]
        return pymax(huber(v - r), huber(clip_delta(v, o, e32) - r))

    def pre_clipped(i, j):
        pre = V[i][j] - O[i][j]
        return math.isnan(pre) or pre != min(max(pre, -e32), e32)  # NaN != NaN: TorchRL counts it

    res = {}
    res["rsl_rl"] = out(mean_real(lambda i, j: mx(clip_delta, i, j)))
    res["baselines_ppo2"] = out(0.5 * mean_real(lambda i, j: mx(clip_delta, i, j)))
    res["rllib_legacy"] = out(mean_real(lambda i, j: mx(clip_delta, i, j)))
    res["rllib_loss_clamp_at_eps"] = out(mean_real(lambda i, j: min((V[i][j] - Rr[i][j]) ** 2, e)))
    res["nemo_aligner"] = out(0.5 * mean_real(lambda i, j: mx(clip_delta, i, j)))
    res["trlx_vf_loss"] = out(0.5 * masked(lambda i, j: mx(clip_clamp, i, j)) / n)
    res["deepspeed_chat"] = res["trlx_vf_loss"]
    res["trlx_vf_clipfrac"] = masked(gt) / n
    res["torchrl_loss_critic"] = out(sum(tr_loss(i, j) for i, j in real) / max(n, 1))  # where(mask, l, 0)
    res["torchrl_value_clip_fraction"] = sum(1.0 for i, j in cells if pre_clipped(i, j)) / len(cells)
    # --calculate-per-token-loss divides by num_tokens = sum over samples of max(n_i, 1)
    res["slime_per_token"] = out(masked(lambda i, j: mx(clip_delta, i, j)) / sum(max(sum(row), 1) for row in M))
    rows = []
    for i in range(len(V)):
        n_i = sum(M[i])
        s_i = sum(mx(clip_delta, i, j) * M[i][j] for j in range(len(V[0])))
        rows.append(s_i / n_i if n_i else NAN)
    res["openrlhf_before_2025_04"] = out(0.5 * sum(rows) / len(rows))
    # OpenRLHF v0.0.1 - v0.1.2: masked_mean adds 1e-8 to each row's count, so an empty row counts as 0
    rows_eps = [
        sum(mx(clip_delta, i, j) * M[i][j] for j in range(len(V[0]))) / (sum(M[i]) + 1e-8) for i in range(len(V))
    ]
    res["openrlhf_v0_1_2"] = out(0.5 * sum(rows_eps) / len(rows_eps))
    # verl v0.4.0 / v0.4.1 token-mean: masked_mean = sum(L * m) / (N + 1e-8), no NaN guard
    tm = masked(lambda i, j: mx(clip_bounds, i, j)) / (n + 1e-8)
    res["verl_v0_4_1_token_mean"] = out(0.5 * tm)
    res["verl_v0_4_0_token_mean"] = out(tm)
    return res


def main():
    with open(P) as f:
        g = json.load(f)
    for case in g["cases"].values():
        V = [[fl(x) for x in row] for row in case["vpreds"]]
        Rr = [[fl(x) for x in row] for row in case["returns"]]
        O = [[fl(x) for x in row] for row in case["values"]]
        M = [[float(x) for x in row] for row in case["response_mask"]]
        for eps_s, res in case["results"].items():
            res.update(vectors(V, Rr, O, M, float(eps_s)))
    g["about_registry_entries"] = (
        "Keys rsl_rl ... verl_v0_4_0_token_mean: the registry's later entries (valueloss.dialects), computed in "
        "plain Python floats from the formula at the commit each entry pins; rllib_loss_clamp_at_eps reads eps as "
        "vf_clip_param; torchrl_* is what ClipPPOLoss 0.14 logs (band float32(eps) wide, padding selected away from the loss, clip "
        "fraction over every element)."
    )
    with open(P, "w") as f:
        json.dump(g, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
