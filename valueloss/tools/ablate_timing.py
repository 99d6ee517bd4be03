"""How fast the trainer runs here, and the same tiny sweep on the process pool and on Ray, side by side:
``python -m valueloss.tools.ablate_timing``.

Prints steps per second of one run in this process (CartPole-v1, and Hopper-v5 where MuJoCo is installed),
then the wall time of one tiny sweep (CartPole-v1, eps off and 0.2, 2 seeds) through ``run_sweep`` with 1
and 2 pool workers and with a local Ray (``ray.init()`` on this machine, started inside the timing), each
with its ratio to the 2-worker pool. The load average is printed with it: on a shared machine, compare only
numbers from one run of this script.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from .ablate import SweepSpec, run_sweep
from .ppo import PPOConfig, train


def steps_per_second(env_id: str, steps: int) -> float:
    config = PPOConfig.for_env(env_id, total_steps=steps, eps=0.2)
    return train(config).steps_per_s


def time_sweep(spec: SweepSpec, **executor) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        run_sweep(spec, out, progress=False, **executor)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m valueloss.tools.ablate_timing", description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=10_240, help="steps per run of the tiny sweep (default 10,240)")
    args = ap.parse_args(argv)
    print(f"load average at start: {os.getloadavg()}, {os.cpu_count()} CPUs")
    print(f"CartPole-v1: {steps_per_second('CartPole-v1', 20_480):,.0f} steps/s (one run, one thread)")
    try:
        import mujoco  # noqa: F401

        print(f"Hopper-v5:   {steps_per_second('Hopper-v5', 4_096):,.0f} steps/s (one run, one thread)")
    except ImportError:
        print("Hopper-v5:   MuJoCo not installed (pip install 'valueloss[mujoco]')")
    spec = SweepSpec("CartPole-v1", eps=(None, 0.2), seeds=(1, 2), total_steps=args.steps)
    timings = {"pool, 2 workers": time_sweep(spec, workers=2), "pool, 1 worker": time_sweep(spec, workers=1)}
    try:
        import ray  # noqa: F401

        timings["ray, local (ray.init here)"] = time_sweep(spec, ray_address="local")
    except ImportError:
        print("Ray not installed (pip install 'valueloss[ray]')")
    base = timings["pool, 2 workers"]
    print(f"tiny sweep: {len(spec.configs())} runs x {args.steps:,} steps of CartPole-v1")
    for name, seconds in timings.items():
        print(f"  {name:28s} {seconds:6.1f} s   x{seconds / base:.2f} of the 2-worker pool")
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
