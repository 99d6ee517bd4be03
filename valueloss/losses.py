"""The clipped value loss as verl and OpenRLHF compute it.

Shapes: every tensor is ``(batch, response_length)`` (any shape with the sequence on the last axis
works for the token modes). Notation: ``v`` = vpreds, ``o`` = old values, ``R`` = returns,
``eps`` = clip range, ``m`` = response mask.

The arithmetic follows each library's operation order, so float results match bit for bit where the
library's own formula is deterministic: NaN in padding is ignored exactly where verl masks with
``where`` and propagates exactly where it multiplies.

This module holds no formula of its own: it checks the arguments once and calls ``library_code``, the
canonical copy of every library's loss. The mirrors that must exist (another language, another device,
a closed form, a batched simulator) are each tied to it by a test (``tests/unit/test_canonical.py`` checks
that every test named here exists):

| copy | what it is for | the test that ties it to the canonical copy |
|---|---|---|
| `library_code.py` (canonical) | each library's loss as one torch function: the registry computes with it, an export writes its source | `tests/upstream/test_verl.py::test_compute_value_loss_bit_for_bit`, `tests/upstream/test_openrlhf.py::test_value_loss_bit_for_bit` (the released code), `tests/unit/test_library_code.py::test_exported_code_is_the_source_of_the_function_that_computes` |
| `losses.compute_value_loss`, `agg_loss` | verl's drop-in API: checks, then calls `library_code.value_loss` / `agg_loss` | `tests/unit/test_canonical.py::test_drop_in_verl_api_is_library_code_bit_for_bit` |
| `losses.ValueLoss` | OpenRLHF's drop-in module: checks, then calls `library_code.openrlhf_token_loss` / `openrlhf_aggregate` | `tests/unit/test_canonical.py::test_drop_in_openrlhf_module_is_library_code_bit_for_bit` |
| `anatomy.py` | the per-token terms and the closed-form gradient (no autograd) | `tests/unit/test_anatomy.py::test_closed_form_equals_autograd_bit_for_bit`, `tests/unit/test_anatomy.py::test_whole_loss_gradient_equals_closed_form_with_aggregation_weights` |
| `fused/passes.py` | the fused pass in torch (inductor or eager) | `tests/unit/test_fused.py::test_random_batches_with_ties_every_mode_and_dtype` |
| `fused/cloop.c` | the same pass as a C loop (CPU) | `tests/unit/test_fused_cloop.py::test_loop_equals_the_compiled_pass` |
| `fused/kernel.py` | the same pass as a Triton kernel (GPU; the test runs it in Triton's interpreter on CPU, compiled where CUDA is present) | `tests/unit/test_fused_kernel.py::test_every_mode_with_and_without_dp_arguments` |
| `viz/live/tokenmath.js` | the per-token terms in the browser | `tests/e2e/test_live_math.py::test_every_term_region_and_gradient_equals_the_core_bit_for_bit` |
| `teach/simulate.loss_rows` | one loss per row, each with its own eps, for the simulator's side-by-side runs | `tests/unit/test_simulate.py::test_loss_rows_are_each_librarys_loss_and_gradient` |
| `tools/clipfrac.py` thresholds | verl's clip fraction at every eps at once (a search over `losses.clip_bounds`) | `tests/unit/test_clipfrac.py::test_sweep_equals_verl_clipfrac_bit_for_bit` |
"""

from __future__ import annotations

import torch
from torch import nn

from . import _validate as check
from . import library_code

__all__ = [
    "clip_bounds",
    "clip_clamp",
    "clip_delta",
    "clip_prediction",
    "masked_sum",
    "masked_mean",
    "agg_loss",
    "compute_value_loss",
    "ValueLoss",
]


def clip_bounds(v: torch.Tensor, values: torch.Tensor, eps) -> torch.Tensor:
    """verl's ``clip_by_value``: ``max(min(v, o + eps), o - eps)``; returns ``v`` itself inside the band."""
    return torch.max(torch.min(v, values + eps), values - eps)


def clip_clamp(v: torch.Tensor, values: torch.Tensor, eps) -> torch.Tensor:
    """TRL's ``torch.clamp(v, o - eps, o + eps)``: same values as bounds, full gradient on the edges."""
    return torch.clamp(v, values - eps, values + eps)


def clip_delta(v: torch.Tensor, values: torch.Tensor, eps) -> torch.Tensor:
    """OpenRLHF / CleanRL / SB3: ``o + clamp(v - o, -eps, eps)``; may sit 1 ulp off ``v`` in the band."""
    return values + (v - values).clamp(-eps, eps)


_CLIPS = {"bounds": clip_bounds, "clamp": clip_clamp, "delta": clip_delta}


def clip_prediction(v: torch.Tensor, values: torch.Tensor, eps, convention: str = "bounds") -> torch.Tensor:
    """Clip ``v`` to the trust band ``[o - eps, o + eps]`` in the named convention."""
    return _CLIPS[check.convention(convention)](v, values, eps)


masked_sum = library_code.masked_sum
masked_mean = library_code.masked_mean


def agg_loss(
    loss_mat: torch.Tensor,
    loss_mask: torch.Tensor,
    loss_agg_mode: str = "token-mean",
    dp_size: int = 1,
    batch_num_tokens=None,
    global_batch_size=None,
    loss_scale_factor=None,
) -> torch.Tensor:
    """Aggregate a per-token loss matrix to a scalar exactly as verl v0.9 does (``library_code.agg_loss``).

    With one process (``dp_size=1``) the global counts default to this batch's own. With several
    data-parallel ranks each rank divides by the *global* count and multiplies by ``dp_size`` so that
    DDP's gradient averaging yields the global mean; missing counts are then a ``ValueError``.

    All-masked batch: token-mean and every seq-mean mode return NaN (0/0, as verl), token-sum 0.
    """
    check.float_tensor("loss_mat", loss_mat)
    check.mask_tensor("loss_mask", loss_mask)
    check.nonempty("loss_mat", loss_mat)
    check.same_shape("loss_mat", loss_mat, loss_mask=loss_mask)
    counts = check.aggregation(loss_agg_mode, dp_size, batch_num_tokens, global_batch_size, loss_scale_factor)
    return library_code.agg_loss(loss_mat, loss_mask, loss_agg_mode, **counts)


def compute_value_loss(
    vpreds: torch.Tensor,
    returns: torch.Tensor,
    values: torch.Tensor,
    response_mask: torch.Tensor,
    cliprange_value: float,
    loss_agg_mode: str = "token-mean",
    *,
    dp_size: int = 1,
    batch_num_tokens=None,
    global_batch_size=None,
    loss_scale_factor=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl's ``compute_value_loss``: ``0.5 * AGG(max((v-R)^2, (clip(v)-R)^2))`` and ``vf_clipfrac``.

    The arguments are checked here, then ``library_code.value_loss`` (the canonical copy, verl's current
    release) computes: the numbers are the registry's and an export's, bit for bit.

    Args:
        vpreds: current critic predictions ``v``, shape (batch, response_length).
        returns: return targets ``R`` (GAE advantages + old values), same shape.
        values: old values ``o`` stored at rollout, same shape.
        response_mask: 1 for real tokens, 0 for padding (bool, integer or floating).
        cliprange_value: ``eps`` in return units (verl's ``critic.cliprange_value``, default 0.5).
        loss_agg_mode: one of ``token-mean`` (default), ``token-sum``, ``seq-mean-token-sum``,
            ``seq-mean-token-mean``, ``seq-mean-token-sum-norm``.

    Returns:
        ``(vf_loss, vf_clipfrac)``: the scalar loss (0.5 applied after aggregation) and the share of
        real tokens where the clipped term is strictly larger, ``sum(m * (L_clip > L_unclip)) / (N + 1e-8)``.
        Those are exactly the tokens whose gradient is zero. An all-masked batch gives a NaN loss and
        a clip fraction of 0.
    """
    check.batch_tensors(vpreds, returns, values, response_mask)
    cliprange_value = check.clip_range("cliprange_value", cliprange_value)
    counts = check.aggregation(loss_agg_mode, dp_size, batch_num_tokens, global_batch_size, loss_scale_factor)
    return library_code.value_loss(vpreds, returns, values, response_mask, cliprange_value, loss_agg_mode, **counts)


class ValueLoss(nn.Module):
    """OpenRLHF's ``ValueLoss`` (v0.11): delta clip convention, ``0.5 *`` the aggregated max.

    ``clip_eps=None`` turns clipping off (plain squared error). ``token_level_loss=True`` averages over
    all real tokens (``sum(L*m) / sum(m)``); ``False`` averages each row first
    (``sum(L*m) / (n_i + 1e-8)``) and then the rows that hold at least one token.

    ``forward(values, old_values, returns, action_mask=None, dp_size=1, batch_num_tokens=None,
    global_batch_size=None)`` has OpenRLHF 0.11's signature. With the global counts (what its trainer
    passes: the tokens, resp. non-empty sequences, of the whole step over every data-parallel rank) the
    loss is ``sum / count * dp_size``, so that DDP's gradient averaging yields the global mean. Where
    OpenRLHF silently ignores ``dp_size > 1`` (no count given) this raises a ``ValueError`` instead.
    """

    def __init__(self, clip_eps: float | None = None, token_level_loss: bool = True) -> None:
        super().__init__()
        self.clip_eps = check.clip_range("clip_eps", clip_eps, allow_none=True)
        if not isinstance(token_level_loss, bool):  # a string such as 'no' would be truthy
            raise TypeError(f"token_level_loss must be True or False, got {token_level_loss!r}")
        self.token_level_loss = token_level_loss

    def forward(
        self,
        values: torch.Tensor,
        old_values: torch.Tensor,
        returns: torch.Tensor,
        action_mask: torch.Tensor | None = None,
        dp_size: int = 1,
        batch_num_tokens=None,
        global_batch_size=None,
    ) -> torch.Tensor:
        check.batch_tensors(
            values, old_values, returns, action_mask, "action_mask", names=("values", "old_values", "returns")
        )
        needed = "tokens" if self.token_level_loss else "sequences"
        dp_size, batch_num_tokens, global_batch_size = check.global_counts(
            dp_size, batch_num_tokens, global_batch_size, needed=needed
        )

        loss = library_code.openrlhf_token_loss(values, old_values, returns, self.clip_eps)
        loss = library_code.openrlhf_aggregate(
            loss, action_mask, self.token_level_loss, dp_size, batch_num_tokens, global_batch_size
        )
        return 0.5 * loss
