"""Each dialect's default clip range, read from the pinned releases themselves.

How the libraries are read: the installed files' text through ``ast`` (verl's ``CriticConfig`` field,
OpenRLHF's ``--critic.value_clip`` argument, TRL's ``PPOConfig`` field, rsl_rl's ``PPO.__init__``
default) and ``inspect`` on the imported packages where they import without stand-ins (SB3, TorchRL).
"""

from __future__ import annotations

import ast
import inspect

import valueloss as vl


def _class_field_default(path, cls_name, field):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls_name:
            for stmt in node.body:
                if isinstance(stmt, ast.AnnAssign) and getattr(stmt.target, "id", None) == field:
                    value = stmt.value
                    if isinstance(value, ast.Call):  # dataclasses.field(default=...)
                        value = next(k.value for k in value.keywords if k.arg == "default")
                    return ast.literal_eval(value)
    raise LookupError(f"{cls_name}.{field} not found in {path}")


def _argparse_default(path, flag):
    for node in ast.walk(ast.parse(path.read_text())):
        call = isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument"
        if call and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == flag:
            return ast.literal_eval(next(k.value for k in node.keywords if k.arg == "default"))
    raise LookupError(f"{flag} not found in {path}")


def _function_default(path, cls_name, func, arg):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef) and node.name == cls_name:
            for f in node.body:
                if isinstance(f, ast.FunctionDef) and f.name == func:
                    names = [a.arg for a in f.args.args]
                    defaults = dict(zip(names[len(names) - len(f.args.defaults) :], f.args.defaults, strict=True))
                    return ast.literal_eval(defaults[arg])
    raise LookupError(f"{cls_name}.{func}({arg}) not found in {path}")


def test_verl_default(upstream_site):
    got = _class_field_default(upstream_site / "verl/workers/config/critic.py", "CriticConfig", "cliprange_value")
    assert got == vl.get_dialect("verl").default_eps == 0.5


def test_openrlhf_default(upstream_site):
    got = _argparse_default(upstream_site / "openrlhf/cli/train_ppo_ray.py", "--critic.value_clip")
    assert got == vl.get_dialect("openrlhf").default_eps == 0.5


def test_trl_default(upstream_site):
    got = _class_field_default(upstream_site / "trl/experimental/ppo/ppo_config.py", "PPOConfig", "cliprange_value")
    assert got == vl.get_dialect("trl").default_eps == 0.2


def test_sb3_default_is_off(upstream_site):
    import stable_baselines3

    assert inspect.signature(stable_baselines3.PPO.__init__).parameters["clip_range_vf"].default is None
    assert vl.get_dialect("sb3").default_eps is None


def test_torchrl_default_is_off(upstream_site):
    from torchrl.objectives import ClipPPOLoss

    assert inspect.signature(ClipPPOLoss.__init__).parameters["clip_value"].default is None
    assert vl.get_dialect("torchrl").default_eps is None


def test_rsl_rl_default(upstream_site):
    path = upstream_site / "rsl_rl/algorithms/ppo.py"
    assert _function_default(path, "PPO", "__init__", "clip_param") == 0.2
    assert _function_default(path, "PPO", "__init__", "use_clipped_value_loss") is True


def test_rsl_rl_dialect_default(upstream_site):
    path = upstream_site / "rsl_rl/algorithms/ppo.py"
    assert vl.get_dialect("rsl_rl").default_eps == _function_default(path, "PPO", "__init__", "clip_param")
