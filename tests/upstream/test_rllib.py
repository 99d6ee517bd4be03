"""RLlib's PPO value loss from ray's own wheels, on both sides of its change, against ``rllib`` / ``rllib-legacy``.

How the library is loaded: ray is far too heavy to import here (grpc, pyarrow, gymnasium, its core workers),
so each release's wheel is downloaded without dependencies (``_harness.RELEASES``) and the loss is taken from
its files and run verbatim: ``PPOTorchPolicy.loss`` of ``rllib/agents/ppo/ppo_torch_policy.py`` in ray 1.11.0
(the value clip) and 1.12.0 (the first release with the loss clamp, ray-project/ray#22171), and
``PPOTorchLearner.compute_loss_for_module`` of ray 2.60.0 (``_harness.load_method``: the method body as
written, its ``@override`` markers and type hints dropped). What RLlib's machinery would hand that code is
stood in: a model returning our predictions as ``value_function()`` / ``compute_values``, an action
distribution whose log-probabilities, KL and entropy are zero (the policy terms vanish), the batch under
RLlib's own column names (``Columns``, ``Postprocessing``, ``SampleBatch`` keys; 1.x's ``sequence_mask``
from the wheel). The value-loss statistic RLlib logs (``tower_stats["mean_vf_loss"]``, the logged
``VF_LOSS_KEY``) is compared with the dialect's loss bit for bit, and so is its gradient into the predictions,
in float32, bfloat16 and float64, with fully masked rows and NaN in padding (the padded tensor is squared and
clamped before the mask selects the real steps, so the gradient there is NaN in RLlib and in ours).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import valueloss as vl
from tests.batches import DTYPES, assert_bitwise, random_batch, seed_of

from ._harness import load_constants, load_functions, load_method, release_dir


class Dist:
    """An action distribution whose log-probabilities, KL and entropy are zero: the policy terms vanish."""

    def __init__(self, inputs, model=None):
        self.inputs = inputs

    @classmethod
    def from_logits(cls, inputs):
        return cls(inputs)

    def logp(self, actions):
        return torch.zeros_like(self.inputs)

    def kl(self, other):
        return torch.zeros_like(self.inputs)

    def entropy(self):
        return torch.zeros_like(self.inputs)


class Model:
    """A ray 1.x ModelV2 as the loss sees it: our predictions as value_function(), and a non-empty RNN state, so
    the loss takes its padded path (sequence_mask over seq_lens, then sum(t[mask]) / num_valid)."""

    def __init__(self, values, logits):
        self.tower_stats = {}
        self.values, self.logits = values, logits

    def __call__(self, batch):
        return self.logits, [torch.zeros(1)]

    def is_time_major(self):
        return False

    def value_function(self):
        return self.values


def policy_loss(site, version):
    """ray 1.x: PPOTorchPolicy.loss, with the wheel's sequence_mask; the batch keys are SampleBatch's names."""
    root = release_dir(site, "ray", version) / "ray" / "rllib"
    utils = load_functions(root / "utils" / "torch_utils.py", ["sequence_mask"], {"torch": torch, "Optional": None})
    keys = SimpleNamespace(SEQ_LENS="seq_lens", ACTIONS="actions", ACTION_LOGP="action_logp", VF_PREDS="vf_preds")
    keys.ACTION_DIST_INPUTS = "action_dist_inputs"
    post = SimpleNamespace(ADVANTAGES="advantages", VALUE_TARGETS="value_targets")
    namespace = {"torch": torch, "SampleBatch": keys, "Postprocessing": post, **utils}
    namespace["explained_variance"] = lambda y, pred: torch.zeros(())  # a logged statistic this test does not check
    loss = load_method(root / "agents" / "ppo" / "ppo_torch_policy.py", "PPOTorchPolicy", "loss", namespace)

    def run(vpreds, batch, eps):
        rows, width = vpreds.shape
        model = Model(vpreds.reshape(-1), torch.zeros(rows * width, dtype=vpreds.dtype))
        zeros = torch.zeros(rows * width, dtype=vpreds.dtype)
        train_batch = {
            "seq_lens": batch.mask.bool().sum(dim=1),
            "action_dist_inputs": zeros,
            "actions": zeros,
            "action_logp": zeros,
            "advantages": zeros,
            "value_targets": batch.returns.reshape(-1),
            "vf_preds": batch.values.reshape(-1),
        }
        config = {"kl_coeff": 0.0, "clip_param": 0.3, "use_critic": True, "vf_clip_param": eps, "vf_loss_coeff": 1.0}
        self = SimpleNamespace(config=config, entropy_coeff=0.0, kl_coeff=0.0)
        loss(self, model, Dist, train_batch)
        return model.tower_stats["mean_vf_loss"]

    return run


def learner_loss(site):
    """ray 2.60.0: PPOTorchLearner.compute_loss_for_module; the logged VF_LOSS_KEY value is returned."""
    root = release_dir(site, "ray", "2.60.0") / "ray" / "rllib"
    marker = {"DeveloperAPI": lambda c: c}  # ray's API-stability decorator: returns the class as is
    columns = load_functions(root / "core" / "columns.py", ["Columns"], dict(marker))["Columns"]
    post = load_functions(root / "evaluation" / "postprocessing.py", ["Postprocessing"], dict(marker))
    names = ["POLICY_LOSS_KEY", "VF_LOSS_KEY", "ENTROPY_KEY"]
    ppo = ["LEARNER_RESULTS_KL_KEY", "LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY", "LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY"]
    namespace = {"torch": torch, "Columns": columns, "Postprocessing": post["Postprocessing"]}
    namespace |= load_constants(root / "core" / "learner" / "learner.py", names)
    namespace |= load_constants(root / "algorithms" / "ppo" / "ppo.py", ppo)
    namespace["explained_variance"] = lambda y, pred: torch.zeros(())  # a logged statistic this test does not check
    path = root / "algorithms" / "ppo" / "torch" / "ppo_torch_learner.py"
    compute = load_method(path, "PPOTorchLearner", "compute_loss_for_module", namespace)

    def run(vpreds, batch, eps):
        logged = {}
        zeros = torch.zeros_like(vpreds)
        module = SimpleNamespace(
            get_train_action_dist_cls=lambda: Dist,
            get_exploration_action_dist_cls=lambda: Dist,
            compute_values=lambda b, embeddings=None: vpreds,
        )
        module.unwrapped = lambda: module
        self = SimpleNamespace(
            module={"default_policy": module},
            metrics=SimpleNamespace(log_dict=lambda stats, key, window: logged.update(stats)),
            entropy_coeff_schedulers_per_module={"default_policy": SimpleNamespace(get_current_value=lambda: 0.0)},
            curr_kl_coeffs_per_module={},
        )
        config = SimpleNamespace(
            use_kl_loss=False, clip_param=0.3, use_critic=True, vf_clip_param=eps, vf_loss_coeff=1.0
        )
        train_batch = {
            columns.LOSS_MASK: batch.mask.bool(),
            columns.ACTIONS: zeros,
            columns.ACTION_LOGP: zeros,
            columns.ACTION_DIST_INPUTS: zeros,
            namespace["Postprocessing"].ADVANTAGES: zeros,
            namespace["Postprocessing"].VALUE_TARGETS: batch.returns,
        }
        compute(
            self,
            module_id="default_policy",
            config=config,
            batch=train_batch,
            fwd_out={columns.ACTION_DIST_INPUTS: zeros},
        )
        return logged[namespace["VF_LOSS_KEY"]]

    return run


RELEASES = {"1.11.0": "rllib-legacy", "1.12.0": "rllib", "2.60.0": "rllib"}


@pytest.mark.parametrize("version", list(RELEASES))
def test_release_matches_its_entry_bit_for_bit(upstream_site, version):
    run = learner_loss(upstream_site) if version == "2.60.0" else policy_loss(upstream_site, version)
    entry = vl.DIALECTS[RELEASES[version]]
    assert entry.verification == "real package" and version in entry.verified
    gen = torch.Generator().manual_seed(seed_of("rllib", version))
    for dtype in DTYPES:
        for i in range(60):
            b = random_batch(gen, dtype, "bool", nan_padding=i % 3 == 2, edge_rows=False)
            eps = (10.0, 0.5, 2.0)[i % 3] if entry.eps_units == "loss" else b.eps
            theirs_leaf, ours_leaf = b.leaf(), b.leaf()
            theirs = run(theirs_leaf, b, eps)
            ours = vl.dialect_loss(entry.name, ours_leaf, b.returns, b.values, b.mask, eps)
            what = f"ray {version} vs {entry.name} {dtype} batch {i}"
            assert_bitwise(ours.loss, theirs, what)
            (grad_theirs,) = torch.autograd.grad(theirs, theirs_leaf)
            (grad_ours,) = torch.autograd.grad(ours.loss, ours_leaf)
            assert_bitwise(grad_ours, grad_theirs, what + " gradient")


def test_the_boundary_is_ray_1_12(upstream_site):
    """1.11.0 clips the prediction (a clamp of v - v_old), 1.12.0 clamps the squared error: the source says so."""
    old, new = (
        (release_dir(upstream_site, "ray", v) / "ray/rllib/agents/ppo/ppo_torch_policy.py").read_text()
        for v in ("1.11.0", "1.12.0")
    )
    assert "vf_clipped = prev_value_fn_out + torch.clamp(" in old and "torch.clamp(vf_loss, 0," not in old
    assert "torch.clamp(vf_loss, 0," in new and "prev_value_fn_out" not in new
