#!/usr/bin/env bash
# The recorded sweeps of docs/sweeps/, in the order they were run (resumable: rerun this script, or any one
# line, and finished runs are kept). Each line writes curves.csv/.parquet, runs.csv and settings.json
# (versions, machine, wall time) into its folder.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
WORKERS=${WORKERS:-2}
OUT=${SWEEPS_DIR:-docs/sweeps}  # results folder (e.g. absolute, when running a snapshot of the code elsewhere)
run() { nice -n 19 "$PY" -m valueloss.tools.ablate --no-progress --workers "$WORKERS" --dialect verl "$@"; }

# 1. The trainer check: no value clipping, CleanRL's settings and step counts (500k), against CleanRL's
#    published returns for ppo.py.
run --env CartPole-v1 --eps off --seeds 5 --steps 500000 --out $OUT/check-CartPole-v1
run --env Acrobot-v1 --eps off --seeds 5 --steps 500000 --out $OUT/check-Acrobot-v1
#    CleanRL published its numbers with its own default, value clipping on (clip_vloss=True, eps = 0.2): the
#    same check at that setting.
run --env CartPole-v1 --eps 0.2 --seeds 5 --steps 500000 --out $OUT/check-CartPole-v1-eps0.2

# 2. The ablation: eps off / 0.2 / 1 / 10 in return units, 10 seeds.
run --env CartPole-v1 --eps off,0.2,1,10 --seeds 10 --steps 200000 --out $OUT/CartPole-v1
run --env Hopper-v5 --eps off,0.2,1,10 --seeds 10 --steps 300000 --out $OUT/Hopper-v5
