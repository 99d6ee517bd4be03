"""OpenAI baselines ppo2's own value-loss lines in TensorFlow against ``baselines-ppo2``: opt-in.

Why opt-in: TensorFlow is the only way to run ppo2's code, and ``tensorflow-cpu==2.21.0`` with its
dependencies took 2 min 30 s and 1.5 GB to install on this project's machine: more than CI's cache should
carry for one entry, so CI leaves the entry "restated formula". Run it with ``VALUELOSS_TENSORFLOW=1`` and
TensorFlow importable (``pip install tensorflow-cpu``, or ``VALUELOSS_TENSORFLOW_SITE=<folder>`` naming a
``pip install --target`` folder, appended to ``sys.path`` so the project's own numpy and torch stay first).
It passed on 2026-12-06 with tensorflow-cpu 2.21.0: the loss within 2 float32 ulps, the gradient bit for bit.

How the library is loaded: baselines' last PyPI release (0.1.5, a 2018 sdist, ``pip download --no-deps``) holds
ppo2's ``Model`` in ``baselines/ppo2/ppo2.py``; the statements of ``Model.__init__`` from ``vpred = ...`` to
``vf_loss = ...`` (the same five lines as master's ``model.py`` at 9b68103b) run verbatim in TensorFlow's eager
mode, with the tensors they read (``train_model.vf``, ``OLDVPRED``, ``R``, ``CLIPRANGE``) given, and
``tf.GradientTape`` for the gradient. ppo2 has no padding: it sees the real tokens only, as the entry does.
TensorFlow's ``reduce_mean`` may add in another order than torch's ``mean``, so the loss is compared to 2 ulps;
the gradient, where ``tf.maximum`` sends a tie's whole gradient to its first argument, bit for bit.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tarfile
from types import SimpleNamespace

import pytest
import torch

import valueloss as vl
from tests.batches import random_batch, seed_of

pytestmark = [
    pytest.mark.tensorflow,
    pytest.mark.skipif(os.environ.get("VALUELOSS_TENSORFLOW") != "1", reason="opt-in: VALUELOSS_TENSORFLOW=1"),
]


@pytest.fixture(scope="module")
def tf():
    site = os.environ.get("VALUELOSS_TENSORFLOW_SITE")
    if site and site not in sys.path:
        sys.path.append(site)
    return pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def ppo2_lines(tmp_path_factory):
    folder = tmp_path_factory.mktemp("baselines")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation", "-q", "-d", str(folder)]
    subprocess.run([*cmd, "baselines==0.1.5"], check=True, capture_output=True, timeout=300)
    (sdist,) = folder.glob("baselines-0.1.5.tar.gz")
    with tarfile.open(sdist) as archive:
        source = archive.extractfile("baselines-0.1.5/baselines/ppo2/ppo2.py").read().decode()
    tree = ast.parse(source)
    (init,) = [
        node
        for cls in tree.body
        if isinstance(cls, ast.ClassDef) and cls.name == "Model"
        for node in cls.body
        if isinstance(node, ast.FunctionDef) and node.name == "__init__"
    ]
    names = [
        s.targets[0].id if isinstance(s, ast.Assign) and isinstance(s.targets[0], ast.Name) else None for s in init.body
    ]
    block = init.body[names.index("vpred") : names.index("vf_loss") + 1]
    return compile(ast.Module(body=block, type_ignores=[]), "baselines/ppo2/ppo2.py", "exec")


def test_ppo2_value_loss_in_tensorflow(tf, ppo2_lines):
    """float32: ppo2's placeholders are tf.float32."""
    dtype = torch.float32
    gen = torch.Generator().manual_seed(seed_of("baselines", str(dtype)))
    tf_dtype = tf.float32
    checked = 0
    for i in range(300):
        b = random_batch(gen, dtype, "bool", edge_rows=False)
        real = b.mask.bool()
        if not real.any():
            continue
        v, r, o = (x[real].numpy() for x in (b.vpreds, b.returns, b.values))
        vf = tf.Variable(v, dtype=tf_dtype)
        namespace = {"tf": tf, "OLDVPRED": tf.constant(o, tf_dtype), "R": tf.constant(r, tf_dtype)}
        namespace |= {"CLIPRANGE": tf.constant(b.eps, tf_dtype)}
        with tf.GradientTape() as tape:
            namespace["train_model"] = SimpleNamespace(vf=vf)
            exec(ppo2_lines, namespace)  # noqa: S102 - baselines' own lines
        theirs = namespace["vf_loss"]
        (grad,) = tape.gradient(theirs, [vf])
        leaf = b.leaf()
        ours = vl.dialect_loss("baselines-ppo2", leaf, b.returns, b.values, b.mask, b.eps).loss
        (ours_grad,) = torch.autograd.grad(ours, leaf)
        ulp = torch.finfo(dtype).eps * abs(float(ours))
        assert abs(float(ours) - float(theirs.numpy())) <= 2 * ulp, (i, float(ours), float(theirs.numpy()))
        assert torch.equal(ours_grad[real], torch.from_numpy(grad.numpy())), i
        checked += 1
    assert checked > 200
