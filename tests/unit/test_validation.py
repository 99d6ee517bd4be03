"""Bad input gets an error that names the argument and what is allowed; edge cases behave as verl."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
import torch

import valueloss as vl


@pytest.fixture
def batch():
    v = torch.tensor([[0.6, 0.5], [0.3, 2.1]])
    r = torch.tensor([[1.0, 1.0], [-1.0, 2.05]])
    o = torch.tensor([[0.5, 0.0], [1.0, 2.0]])
    m = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    return v, r, o, m


def test_shape_mismatch_names_the_argument(batch):
    v, r, o, m = batch
    with pytest.raises(ValueError, match="returns has shape"):
        vl.compute_value_loss(v, r[:, :1], o, m, 0.2)
    with pytest.raises(ValueError, match="response_mask has shape"):
        vl.compute_value_loss(v, r, o, m.flatten(), 0.2)


def test_non_floating_predictions_are_a_type_error(batch):
    v, r, o, m = batch
    with pytest.raises(TypeError, match="vpreds must be a floating tensor"):
        vl.compute_value_loss(v.long(), r, o, m, 0.2)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        vl.compute_value_loss(v.numpy(), r, o, m, 0.2)
    with pytest.raises(TypeError, match="old_values must be a floating tensor"):
        vl.ValueLoss(0.2)(v, o.int(), r, m)


@pytest.mark.parametrize("eps", [-0.1, float("nan"), float("inf"), -float("inf")])
def test_bad_eps_values(batch, eps):
    v, r, o, m = batch
    with pytest.raises(ValueError, match="cliprange_value must be a finite number >= 0"):
        vl.compute_value_loss(v, r, o, m, eps)
    with pytest.raises(ValueError, match="clip_eps"):
        vl.ValueLoss(eps)
    with pytest.raises(ValueError, match="cliprange"):
        vl.value_loss_terms(v, r, o, eps)


@pytest.mark.parametrize("eps", ["0.2", None, [0.2], True])
def test_eps_of_the_wrong_type(batch, eps):
    v, r, o, m = batch
    with pytest.raises((TypeError, ValueError), match="cliprange_value"):
        vl.compute_value_loss(v, r, o, m, eps)


def test_eps_as_tensor_and_numpy_scalar_are_accepted(batch):
    v, r, o, m = batch
    reference, _ = vl.compute_value_loss(v, r, o, m, 0.2)
    assert torch.equal(vl.compute_value_loss(v, r, o, m, torch.tensor(0.2))[0], reference)
    assert torch.equal(vl.compute_value_loss(v, r, o, m, np.float32(0.2))[0], reference)


def test_unknown_mode_lists_the_valid_ones(batch):
    v, r, o, m = batch
    with pytest.raises(ValueError, match="unknown loss_agg_mode 'seq-mean'.*token-mean, token-sum"):
        vl.compute_value_loss(v, r, o, m, 0.2, "seq-mean")


def test_unknown_dialect_and_convention_list_the_valid_ones(batch):
    v, r, o, m = batch
    with pytest.raises(ValueError, match="unknown dialect 'ppo'.*verl, openrlhf, trl"):
        vl.dialect_loss("ppo", v, r, o, m, 0.2)
    with pytest.raises(ValueError, match="unknown clip convention 'round'.*bounds, clamp, delta"):
        vl.value_loss_terms(v, r, o, 0.2, "round")


@pytest.mark.parametrize(
    "bad",
    [
        torch.tensor([[1.0, 0.5], [1.0, 0.0]]),
        torch.tensor([[1, 2], [1, 0]]),
        torch.tensor([[1.0, float("nan")], [1.0, 0.0]]),
    ],
)
def test_masks_must_be_zero_or_one(batch, bad):
    v, r, o, _ = batch
    with pytest.raises(ValueError, match="response_mask must hold only 0 and 1"):
        vl.compute_value_loss(v, r, o, bad, 0.2)


def test_bool_and_integer_masks_give_the_float_mask_numbers(batch):
    v, r, o, m = batch
    reference = vl.compute_value_loss(v, r, o, m, 0.2, "seq-mean-token-mean")
    for mask in (m.bool(), m.long()):
        got = vl.compute_value_loss(v, r, o, mask, 0.2, "seq-mean-token-mean")
        assert float(got[0]) == pytest.approx(float(reference[0]))
        assert float(got[1]) == pytest.approx(float(reference[1]))


def test_empty_batch_is_refused():
    e = torch.zeros(0, 4)
    with pytest.raises(ValueError, match="empty batch"):
        vl.compute_value_loss(e, e, e, e, 0.2)
    with pytest.raises(ValueError, match="at least one dimension"):
        vl.compute_value_loss(torch.tensor(1.0), torch.tensor(1.0), torch.tensor(1.0), torch.tensor(1.0), 0.2)


def test_all_masked_batch_behaves_as_verl(batch):
    """Documented: token-mean and the seq modes give NaN (0/0), token-sum 0, the clip fraction 0."""
    v, r, o, m = batch
    empty = torch.zeros_like(m)
    for mode in vl.AGG_MODES:
        loss, clipfrac = vl.compute_value_loss(v, r, o, empty, 0.2, mode)
        assert float(clipfrac) == 0.0
        if mode == "token-sum":
            assert float(loss) == 0.0
        else:
            assert math.isnan(float(loss))


def test_data_parallel_arguments(batch):
    v, r, o, m = batch
    with pytest.raises(ValueError, match="batch_num_tokens"):
        vl.compute_value_loss(v, r, o, m, 0.2, "token-mean", dp_size=2)
    with pytest.raises(ValueError, match="global_batch_size"):
        vl.compute_value_loss(v, r, o, m, 0.2, "seq-mean-token-mean", dp_size=2)
    with pytest.raises(ValueError, match="dp_size must be an integer >= 1"):
        vl.compute_value_loss(v, r, o, m, 0.2, dp_size=0)
    with pytest.raises(ValueError, match="batch_num_tokens must be a finite number > 0"):
        vl.compute_value_loss(v, r, o, m, 0.2, batch_num_tokens=0)
    local, _ = vl.compute_value_loss(v, r, o, m, 0.2, "token-mean")
    # Two ranks holding the same batch: each divides by the global count (6) and multiplies by 2.
    two_ranks, _ = vl.compute_value_loss(v, r, o, m, 0.2, "token-mean", dp_size=2, batch_num_tokens=6)
    assert float(two_ranks) == pytest.approx(float(local))
    per_seq, _ = vl.compute_value_loss(v, r, o, m, 0.2, "seq-mean-token-sum", dp_size=2, global_batch_size=4)
    assert float(per_seq) == pytest.approx(float(vl.compute_value_loss(v, r, o, m, 0.2, "seq-mean-token-sum")[0]))
    scaled, _ = vl.compute_value_loss(v, r, o, m, 0.2, "seq-mean-token-sum-norm", loss_scale_factor=10)
    base, _ = vl.compute_value_loss(v, r, o, m, 0.2, "seq-mean-token-sum")
    assert float(scaled) == pytest.approx(float(base) / 10)


def test_device_mismatch_is_named(batch):
    v, r, o, m = batch
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device to build a cross-device batch")
    with pytest.raises(ValueError, match="returns is on cuda"):
        vl.compute_value_loss(v, r.cuda(), o, m, 0.2)


def test_grid_inputs_are_checked():
    with pytest.raises(ValueError, match="unknown grid axis 'w'"):
        vl.evaluate_grid("w", [0, 1], "R", [0, 1])
    with pytest.raises(ValueError, match="must differ"):
        vl.evaluate_grid("v", [0, 1], "v", [0, 1])
    with pytest.raises(ValueError, match="between 2 and 1000"):
        vl.axis_values(0, 1, 5000)
    with pytest.raises(ValueError, match="low < high"):
        vl.axis_values(1, 0, 10)
    with pytest.raises(TypeError, match="vpreds must be a number"):
        vl.value_loss_terms("a", 0.0, 0.0, 0.2)


# ----------------------------------------------------------------------- issue 11.9: sizes and types


def test_token_level_loss_must_be_a_bool():
    """'no' is truthy: it used to give the token-level mean the user asked to turn off."""
    with pytest.raises(TypeError, match="token_level_loss must be True or False"):
        vl.ValueLoss(0.2, token_level_loss="no")
    with pytest.raises(TypeError, match="token_level_loss"):
        vl.ValueLoss(0.2, token_level_loss=0)
    assert vl.ValueLoss(0.2, token_level_loss=False).token_level_loss is False


@pytest.mark.parametrize("n", [2.9, 3.5, float("nan"), float("inf")])
def test_axis_values_refuses_a_fractional_resolution(n):
    with pytest.raises(ValueError, match="whole number"):
        vl.axis_values(0.0, 1.0, n)


@pytest.mark.parametrize("n", [True, "10", None])
def test_axis_values_refuses_a_resolution_that_is_no_number(n):
    with pytest.raises(TypeError, match="n \\(grid resolution\\)"):
        vl.axis_values(0.0, 1.0, n)


def test_axis_values_still_takes_whole_numbers():
    assert len(vl.axis_values(0.0, 1.0, 3)) == len(vl.axis_values(0.0, 1.0, np.int64(3))) == 3


def test_evaluate_grid_caps_each_axis():
    from valueloss.grids import MAX_GRID_POINTS

    with pytest.raises(ValueError, match=f"at most {MAX_GRID_POINTS:,} per axis"):
        vl.evaluate_grid("v", np.zeros(MAX_GRID_POINTS + 1), "R", np.zeros(2))
    g = vl.evaluate_grid("v", np.zeros(MAX_GRID_POINTS), "R", np.zeros(2))
    assert g.terms.loss_max.shape == (2, MAX_GRID_POINTS)


@pytest.mark.parametrize("bins", [0, 10**7, 2.5, True, "60"])
def test_histogram_bins_are_capped(bins):
    from valueloss.tools.batch_reports import MAX_BINS, histogram

    with pytest.raises(ValueError, match=f"between 1 and {MAX_BINS}"):
        histogram(np.zeros(3), 0.2, bins=bins)


def test_sweep_eps_caps_the_number_of_ratios():
    from valueloss.teach.simulate import MAX_SWEEP_RATIOS, SimConfig, sweep_eps

    with pytest.raises(ValueError, match=f"at most {MAX_SWEEP_RATIOS}"):
        sweep_eps(SimConfig(), ratios=np.linspace(1.0, 16.0, MAX_SWEEP_RATIOS + 1))


@pytest.mark.parametrize(
    "complex_input",
    [np.array([1 + 0.7j]), np.array([[1 + 0.7j, 2.0]]), [1 + 0.7j], 1 + 0.7j, np.complex128(1 + 0.7j)],
)
def test_complex_input_to_value_loss_terms_is_an_error_not_a_warning(complex_input):
    """numpy used to drop the imaginary part with a ComplexWarning and compute on the real part."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TypeError, match="vpreds"):
            vl.value_loss_terms(complex_input, 0.0, 0.0, 0.2)
        with pytest.raises(TypeError, match="returns"):
            vl.value_loss_terms(0.0, complex_input, 0.0, 0.2)


# ----------------------------------------------------------------------- issue 21.8: one rule for scalars


def _entry_points(v, r, o, m):
    """The four public ways to compute the loss, each taking the clip range as its own argument."""
    from valueloss.fused import fused_value_loss

    return {
        "compute_value_loss": lambda eps, **kw: vl.compute_value_loss(v, r, o, m, eps, **kw)[0],
        "ValueLoss": lambda eps, **kw: vl.ValueLoss(eps)(v, o, r, m, **kw),
        "dialect_loss": lambda eps, **kw: vl.dialect_loss("verl", v, r, o, m, eps).loss,
        "fused_value_loss": lambda eps, **kw: fused_value_loss(v, r, o, m, eps, **kw)[0],
    }


@pytest.mark.parametrize("eps", [10**400, -(10**400), 10**5000], ids=["1e400", "-1e400", "1e5000"])
def test_an_integer_too_large_for_a_float_is_a_value_error_everywhere(batch, eps):
    """It used to raise OverflowError from float() in all four; 10**5000 even failed to print itself."""
    for name, loss in _entry_points(*batch).items():
        with pytest.raises(ValueError, match="must be a finite number.*digits") as info:
            loss(eps)
        assert len(str(info.value)) < 200, name


@pytest.mark.parametrize("eps", [Fraction(1, 5), np.float64(0.2), np.float32(0.2), np.int64(0), 0, torch.tensor(0.2)])
def test_every_real_number_is_read_the_same_way_by_every_entry_point(batch, eps):
    """Fraction(1, 5) used to work in fused_value_loss and raise torch's TypeError in compute_value_loss."""
    as_float = float(eps)
    for name, loss in _entry_points(*batch).items():
        assert torch.equal(loss(eps), loss(as_float)), name


@pytest.mark.parametrize("eps", [Decimal("0.2"), "0.2", True, np.bool_(True), 0.2 + 0j, torch.tensor([0.2, 0.3])])
def test_what_is_not_a_real_number_is_refused_by_every_entry_point(batch, eps):
    for name, loss in _entry_points(*batch).items():
        with pytest.raises((TypeError, ValueError), match="cliprange|clip_eps") as info:
            loss(eps)
        assert "Tensor" not in str(info.value) or "tensor of shape" in str(info.value), name


def test_counts_follow_the_same_rule(batch):
    v, r, o, m = batch
    want = vl.compute_value_loss(v, r, o, m, 0.2, dp_size=2, batch_num_tokens=6)[0]
    for count in (Fraction(6), np.int64(6), 6.0, torch.tensor(6.0)):
        for name, loss in _entry_points(v, r, o, m).items():
            if name == "dialect_loss":
                continue  # a library's own loss takes no data-parallel counts
            assert torch.equal(loss(0.2, dp_size=2, batch_num_tokens=count), want), (name, count)
    with pytest.raises(ValueError, match="batch_num_tokens must be a finite number, got an integer of"):
        vl.compute_value_loss(v, r, o, m, 0.2, batch_num_tokens=10**400)
    with pytest.raises(ValueError, match="dp_size must be an integer >= 1, got an integer of"):
        vl.compute_value_loss(v, r, o, m, 0.2, dp_size=-(10**400))
    assert torch.equal(vl.compute_value_loss(v, r, o, m, 0.2, dp_size=np.int64(1))[0], want)
