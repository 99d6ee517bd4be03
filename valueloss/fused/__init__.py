"""verl's clipped value loss in one memory pass, with autograd's gradient bit for bit.

The loss is memory-bound: a forward+backward has to read ``v``, ``v_old``, ``R`` and the mask and
write the gradient, yet the eager formula launches dozens of full-size kernels. Here one pass reads the
four inputs once, reduces the masked loss sum(s), the clip count and the token count, and writes the
*unit* gradient ``u`` of every token (its gradient for a per-token weight of one, in autograd's order
of operations); the backward turns ``u`` into the gradient for the weight autograd actually hands each
token, in place, and hands that buffer to autograd (no copy).

Read top to bottom:

1. :mod:`~valueloss.fused.dispatch`: checks the call once (as ``compute_value_loss`` does), decides
   everything into a frozen :class:`~valueloss.fused.plan.Call`, runs one path, applies verl's tail.
2. :mod:`~valueloss.fused.cloop` (+ ``cloop.c``): the CPU path for small batches, a plain C loop;
   :mod:`~valueloss.fused.passes`: the same pass in torch, compiled by inductor (or eager), for larger ones.
3. :mod:`~valueloss.fused.kernel`: the GPU path, one Triton kernel (plus a one-program finalize).
4. :mod:`~valueloss.fused.function`: the autograd Functions and the exact backward.

Why the gradient equals autograd of ``compute_value_loss`` bit for bit
----------------------------------------------------------------------
Autograd hands each token of verl's loss matrix a weight ``W`` (the gradient of the masked sum, cast
to the matrix's dtype; ``+0`` for padding in the token modes, ``g * 0`` per row in the seq modes);
the Function's backward receives exactly that from autograd. Per token, verl's backward then applies
the ``maximum`` rule (ties split the weight in half), ``pow``'s ``w * (2 * d)`` and the ``min``/``max``
clip rules. Every step multiplies by a power of two except the one product ``w * (2 * d)``, so the
gradient is ``round(W * u)``: exactly what the backward computes, except where the pass flags a case
it cannot vouch for:

- a token exactly on the band edge (``v == v_old +- eps``): two differently halved branches are
  rounded separately and then added;
- a product ``W * u`` that could leave the normal float range (``|u|`` below 2^-59, a squared term
  above 2^120, NaN or inf among the real tokens);
- a weight that is negative, non-finite or outside ``[2^-60, 2^60]`` (a loss multiplied by a
  negative number, an all-masked batch), or a float16 input.

Those tokens (on the GPU) or batches (on CPU) are recomputed from the inputs by autograd's rules one
by one for autograd's own weights: exact too. The loss equals verl's up to the order of the float
sums; the clip fraction is identical (an integer count divided as verl divides it) while the number of
real tokens stays below 2^24, where verl's own float32 count is exact.

Why the forward writes ``u`` and not the gradient itself: the weight depends on the upstream gradient
(``loss * scale_factor`` before ``backward()``, as verl's critic does), which the forward cannot know.
Writing the gradient for a guessed upstream would be one pass only when the guess is right (and a
guess remembered from the previous backward couples calls); writing ``u`` costs one more read and
write of the gradient in the backward (8 bytes per float32 token) for every upstream alike.

One caveat, eager torch's rather than ours: ``minimum`` / ``maximum`` of ``+0.0`` and ``-0.0`` return
the second operand in eager's vectorised loop but the first in its scalar loop (tensors of a few
elements, and the last few elements of a row), so where ``v`` is a zero of the other sign than
``v_old + eps`` the *sign of a zero gradient* can differ from eager there. The fused pass always
follows the vectorised rule. The values are equal (``-0.0 == 0.0``).

Per call on the GPU (token-mean, float32, a float32 mask, forward+backward, read from the code; the
previous CUDA path, inductor's pass, in brackets):

- host-device syncs: none [3: ``torch.tensor([w_pre], device=...)``, ``stats.tolist()``,
  ``weights.item()``; more in seq modes, with a float mask of another dtype or a tensor clip range];
  a clip range given as a CUDA tensor is read once (pass a Python float);
- launches: forward 2 Triton kernels (the pass, the finalize), 2 for the mask check (``bad == 0`` and the
  device-side assertion; none for a bool mask) and verl's tail as 3 small torch ops; backward the tail's
  3 autograd nodes and 1 Triton kernel (a cast more where the weight's dtype differs from ``vpreds``'):
  11, 9 with a bool mask [about 21]; ``torch.autograd.grad``'s implicit ones is one more, for any loss;
- bytes per token: the forward reads 16 (``v``, ``R``, ``v_old``, the mask; 13 with a bool mask) and writes
  4 (``u``), the backward reads 4 and writes 4 (the inputs again only for flagged tokens): 28 [about 54;
  20 is the floor: the inputs read once, the gradient written once].
"""

from .cloop import SMALL_TOKENS
from .dispatch import BACKENDS, FusedValueLoss, fused_backend_report, fused_value_loss

__all__ = ["BACKENDS", "SMALL_TOKENS", "FusedValueLoss", "fused_backend_report", "fused_value_loss"]
