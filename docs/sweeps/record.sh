#!/usr/bin/env bash
# The recorded sweeps of docs/sweeps/, in the order they were run (resumable: rerun this script, or any one
# line, and finished runs are kept). Each line writes curves.csv/.parquet, runs.csv and settings.json
# (versions, machine, wall time) into its folder.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
WORKERS=${WORKERS:-2}
run() { nice -n 19 "$PY" -m valueloss.tools.ablate --no-progress --workers "$WORKERS" --dialect verl "$@"; }

# 1. The trainer check: no value clipping, CleanRL's settings and step counts (500k), against CleanRL's
#    published returns for ppo.py.
run --env CartPole-v1 --eps off --seeds 5 --steps 500000 --out docs/sweeps/check-CartPole-v1
run --env Acrobot-v1 --eps off --seeds 5 --steps 500000 --out docs/sweeps/check-Acrobot-v1

# 2. The ablation: eps off / 0.2 / 1 / 10 in return units, 10 seeds.
run --env CartPole-v1 --eps off,0.2,1,10 --seeds 10 --steps 200000 --out docs/sweeps/CartPole-v1
run --env Hopper-v5 --eps off,0.2,1,10 --seeds 10 --steps 300000 --out docs/sweeps/Hopper-v5
