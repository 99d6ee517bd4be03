"""The fused Triton kernel's checks that need a GPU, for ``record-gpu.sh``: ``python docs/benchmarks/gpu_checks.py
{bits,syncs,profile} [--out DIR]``.

- ``bits``: the kernel's gradient against eager autograd of verl's formula (and OpenRLHF's module) on the
  same device, element for element, for every mode, with and without the data-parallel arguments, for
  two upstream gradients, in float32 and bfloat16, launched with fused multiply-add off (as the library
  does) and on (Triton's default on NVIDIA), to show what ``enable_fp_fusion=False`` buys.
- ``syncs``: a fused forward+backward under ``torch.cuda.set_sync_debug_mode("error")`` (after a warm-up
  call): any host-device synchronisation raises.
- ``profile``: ``torch.profiler``'s kernel table of a fused forward+backward at each size, with the
  number of kernel launches.

Without CUDA it dry-runs on CPU tensors under Triton's interpreter (set here), with small sizes; there
``syncs`` refuses any read of a tensor's value into Python instead (what a sync would be on a GPU).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

import torch

CUDA = torch.cuda.is_available()
if not CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before the kernel is imported
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import valueloss as vl  # noqa: E402
from valueloss.fused import dispatch, kernel  # noqa: E402
from valueloss.fused.tail import verl_tail  # noqa: E402

DEVICE = "cuda" if CUDA else "cpu"
MODES = vl.AGG_MODES
BITS = {torch.float32: torch.int32, torch.bfloat16: torch.int16}


def batch(rows: int, width: int, dtype: torch.dtype, seed: int = 0):
    """A padded batch with band-edge ties, an empty row and NaN garbage in padding."""
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(rows, width, generator=g) * 2
    returns = values + torch.randn(rows, width, generator=g) * 1.5
    vpreds = values + torch.randn(rows, width, generator=g) * 0.6
    lengths = torch.randint(0, width + 1, (rows,), generator=g)
    lengths[0] = 0
    mask = torch.arange(width)[None, :] < lengths[:, None]
    eps = 0.2
    pick = torch.rand(rows, width, generator=g)
    vpreds = torch.where(pick < 0.05, values + eps, torch.where(pick > 0.95, values - eps, vpreds))
    vpreds[~mask & (pick < 0.1)] = float("nan")
    v, r, o = (t.to(dtype) for t in (vpreds, returns, values))
    return v.to(DEVICE), r.to(DEVICE), o.to(DEVICE), mask.to(DEVICE), eps


def differing(got: torch.Tensor, want: torch.Tensor) -> int:
    """Elements whose bits differ (NaN against NaN counts as equal)."""
    both_nan = torch.isnan(got) & torch.isnan(want)
    a = torch.where(both_nan, 0, got).view(BITS[got.dtype])
    b = torch.where(both_nan, 0, want).view(BITS[want.dtype])
    return int((a != b).sum())


def kernel_grad(v, r, o, m, eps, mode, scale, fp_fusion, **kw) -> torch.Tensor:
    """The kernel's forward and backward launched directly (``fp_fusion`` chosen), verl's tail under autograd."""
    x = v.detach().requires_grad_(True)
    call = dispatch._verl_call(x, r, o, m, eps, mode, "triton")
    sums, counts, _, _, u = kernel.forward(call, fp_fusion=fp_fusion)
    sums = sums.detach().requires_grad_(True)
    rows_shape = v.shape[:-1]
    if call.row_sums:
        loss = verl_tail(sums.reshape(rows_shape), counts.reshape(rows_shape), mode, v.shape[-1], **kw)
    else:
        loss = verl_tail(sums, counts, mode, v.shape[-1], **kw)
    (grad_sums,) = torch.autograd.grad(loss * scale, sums)
    w_pad = None if call.where_sum else (grad_sums * 0).to(v.dtype)
    return kernel.backward(call, grad_sums.to(v.dtype), w_pad, u, fp_fusion=fp_fusion)


def eager_grad(v, r, o, m, eps, mode, scale, **kw) -> torch.Tensor:
    x = v.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(vl.compute_value_loss(x, r, o, m, eps, mode, **kw)[0] * scale, x)
    return grad


def dp_args(mode: str) -> dict:
    count = {"token-mean": {"batch_num_tokens": 1000}, "token-sum": {}}.get(mode, {"global_batch_size": 50})
    return {"dp_size": 4, **count, **({"loss_scale_factor": 9} if mode == "seq-mean-token-sum-norm" else {})}


def check_bits(rows: int, width: int) -> list[dict]:
    results = []
    for dtype in (torch.float32, torch.bfloat16):
        v, r, o, m, eps = batch(rows, width, dtype)
        for mode in MODES:
            for dp in (False, True):
                kw = dp_args(mode) if dp else {}
                for scale in (1.0, 0.37):
                    want = eager_grad(v, r, o, m, eps, mode, scale, **kw)
                    row = {"dtype": str(dtype).removeprefix("torch."), "mode": mode, "dp": dp, "upstream": scale}
                    for fma in (False, True):
                        got = kernel_grad(v, r, o, m, eps, mode, scale, fma, **kw)
                        row["differ_fma_on" if fma else "differ_fma_off"] = differing(got, want)
                    results.append(row)
        for clip, token_level in ((eps, True), (eps, False), (None, True)):  # OpenRLHF's module, kernel as shipped
            got, want = [], []
            for module, out in ((vl.FusedValueLoss(clip, token_level), got), (vl.ValueLoss(clip, token_level), want)):
                x = v.detach().clone().requires_grad_(True)
                out.append(torch.autograd.grad(module(x, o, r, m) * 0.37, x)[0])
            results.append(
                {"dtype": str(dtype).removeprefix("torch."), "mode": f"openrlhf clip={clip} token_level={token_level}",
                 "dp": False, "upstream": 0.37, "differ_fma_off": differing(got[0], want[0]), "differ_fma_on": None}
            )  # fmt: skip
    return results


@contextlib.contextmanager
def no_host_reads():
    """On CPU, what a sync would be on a GPU: any read of a tensor's value into Python raises."""
    names = ("item", "tolist", "__bool__", "__int__", "__float__", "__index__")
    saved = {name: getattr(torch.Tensor, name) for name in names}

    def refuse(name):
        def read(*args, **kwargs):
            raise RuntimeError(f"host read: Tensor.{name}")

        return read

    try:
        for name in names:
            setattr(torch.Tensor, name, refuse(name))
        yield
    finally:
        for name, fn in saved.items():
            setattr(torch.Tensor, name, fn)


def check_syncs(rows: int, width: int) -> list[dict]:
    results = []
    for mask_dtype in (torch.bool, torch.int64, torch.float32):
        for mode in ("token-mean", "seq-mean-token-mean"):
            v, r, o, m, eps = batch(rows, width, torch.float32)
            m = m.to(mask_dtype)
            x = v.clone().requires_grad_(True)

            def step(x=x, r=r, o=o, m=m, eps=eps, mode=mode):
                return torch.autograd.grad(vl.fused_value_loss(x, r, o, m, eps, mode, backend="triton")[0] * 0.37, x)

            step()  # warm-up: compiles the kernels
            guard = no_host_reads() if not CUDA else contextlib.nullcontext()
            outcome = "no sync"
            try:
                if CUDA:
                    torch.cuda.synchronize()
                    torch.cuda.set_sync_debug_mode("error")
                with guard:
                    step()
            except RuntimeError as err:
                outcome = f"SYNC: {str(err).splitlines()[0][:200]}"
            finally:
                if CUDA:
                    torch.cuda.set_sync_debug_mode(0)
            if mask_dtype != torch.bool and not CUDA and outcome.startswith("SYNC"):
                outcome += " (on CPU the non-bool mask is checked on the host; on CUDA by a device-side assertion)"
            results.append({"mask": str(mask_dtype).removeprefix("torch."), "mode": mode, "outcome": outcome})
    return results


def profile(sizes: list[tuple[int, int]], out: Path) -> list[dict]:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if CUDA else [])
    summary = []
    for rows, width in sizes:
        v, r, o, m, eps = batch(rows, width, torch.float32)
        x = v.clone().requires_grad_(True)

        def step(x=x, r=r, o=o, m=m, eps=eps):
            return torch.autograd.grad(vl.fused_value_loss(x, r, o, m, eps, backend="triton")[0], x)

        step()
        if CUDA:
            torch.cuda.synchronize()
        with torch_profile(activities=activities) as prof:
            step()
            if CUDA:
                torch.cuda.synchronize()
        sort = "self_cuda_time_total" if CUDA else "self_cpu_time_total"
        table = prof.key_averages().table(sort_by=sort, row_limit=25)
        (out / f"profile-{rows}x{width}.txt").write_text(table + "\n")
        kernels = [e for e in prof.events() if CUDA and e.device_type == torch.autograd.DeviceType.CUDA]
        summary.append({"size": f"{rows}x{width}", "kernel_launches": len(kernels) if CUDA else None})
        print(f"== {rows}x{width}\n{table}")
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("check", choices=("bits", "syncs", "profile"))
    parser.add_argument("--out", default=os.environ.get("OUT", "."))
    parser.add_argument("--sizes", default="8x128,4096x8192" if CUDA else "8x128,64x256")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = [tuple(int(n) for n in s.split("x")) for s in args.sizes.split(",")]
    print(f"device: {torch.cuda.get_device_name() if CUDA else 'cpu (Triton interpreter: a dry run)'}")
    if args.check == "bits":
        rows, width = (64, 1024) if CUDA else (8, 64)
        results = check_bits(rows, width)
        for row in results:
            print(row)
        bad = [row for row in results if row["differ_fma_off"]]
        print(f"{len(results) - len(bad)} of {len(results)} cases bit-equal to eager with FMA off (as shipped); "
              f"with FMA on {sum(1 for row in results if row['differ_fma_on'])} cases differ")  # fmt: skip
    elif args.check == "syncs":
        rows, width = (512, 1024) if CUDA else (8, 64)
        results = check_syncs(rows, width)
        for row in results:
            print(row)
        bad = [row for row in results if row["outcome"] != "no sync" and (CUDA or row["mask"] == "bool")]
    else:
        results = profile(sizes, out)
        bad = []
    (out / f"gpu-{args.check}.json").write_text(json.dumps({"device": DEVICE, "results": results}, indent=1) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
