#!/usr/bin/env bash
# Every --device cuda measurement in one short run, for a lent GPU machine (about 5 minutes on one H200):
#   calculus (gradient and SCR) at 10^4..10^7 devices, training at 10^3..10^5 devices (784-128-10 MLP), one C2FL
#   city-scale run, and the CUDA tests; the tables land in $OUT/gpu.md (default benchmarks/results/gpu/).
#
#   bash benchmarks/gpu.sh                      # on the GPU machine (the device tool's `run`)
#   bash benchmarks/gpu.sh --device cpu --small # anywhere: the same steps in CI-sized settings (tests run this)
#
# A bare GPU machine has torch, numpy, scipy, networkx, pyyaml, matplotlib, tqdm and scikit-learn but none of
# shapely, pydantic, annotated-types or plotly, and no network: carry them as wheels in .whl/ (see the device tool's
# notes: `pip download --only-binary=:all: --python-version 3.12 ... -d .whl shapely pydantic pydantic-core
# annotated-types typing-inspection plotly narwhals`); this script installs whatever .whl/ holds.
set -euo pipefail
cd "$(dirname "$0")/.."

DEVICE=cuda
SMALL=0
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --small) SMALL=1; shift ;;
    *) echo "usage: bash benchmarks/gpu.sh [--device cuda|cpu] [--small]" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/fieldlearn-site .whl/*.whl
  export PYTHONPATH="/tmp/fieldlearn-site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE
OUT_DIR=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT_DIR"
TABLE="$OUT_DIR/gpu.md"

if [ "$SMALL" = 1 ]; then
  GRAD_SIZES=1000,10000; TRAIN_SIZES=100; CITY_ROUNDS=2; BUDGET=0.2; STEPS=2
else
  GRAD_SIZES=10000,100000,1000000,10000000; TRAIN_SIZES=1000,10000,100000; CITY_ROUNDS=20; BUDGET=2; STEPS=4
fi

{
  echo "# GPU run ($DEVICE), $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  "$PY" -c "import torch; print('torch', torch.__version__, '| cuda' if torch.cuda.is_available() else '| no cuda', torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
  echo
  echo "## Calculus: gradient and SCR (device-rounds/s; bare = the same gradient as hand-written array code)"
  echo '```'
  "$PY" benchmarks/calculus.py --backend torch --device "$DEVICE" --sizes "$GRAD_SIZES" --budget "$BUDGET"
  echo '```'
  echo
  echo "## Training: batched model-steps/s, 784-128-10 MLP"
  echo '```'
  "$PY" benchmarks/learning.py --device "$DEVICE" --sizes "$TRAIN_SIZES" --models mnist --steps "$STEPS" \
      --loop-devices 16 --repeat 1
  echo '```'
  echo
  echo "## C2FL at city scale (1,024 devices), $CITY_ROUNDS rounds"
  echo '```'
  "$PY" -m fieldlearn.sim c2fl-city --device "$DEVICE" --set "duration.rounds=$CITY_ROUNDS" \
      --set "exports.metrics=[cacc, static_accuracy]" --set exports.figures.timeseries=false \
      --out "$OUT_DIR/c2fl-city" --force --quiet
  "$PY" -c "import json,sys; s=json.load(open(sys.argv[1])); print({k: s[k] for k in ('devices','device_rounds')}, s['final'])" \
      "$OUT_DIR/c2fl-city/summary.json"
  echo '```'
  echo
  echo "## CUDA tests"
  echo '```'
  "$PY" -m pytest -q -p no:cacheprovider tests/calculus/test_backend.py -k "cuda or torch" 2>&1 | tail -3
  echo '```'
} 2>&1 | tee "$TABLE"
