#!/usr/bin/env bash
# The smoke profile's stages, then as much of quick as fits, on a lent GPU machine (device
# `run`), and the dry run's price for the rest of quick from that machine's own records: what a
# machine with more cores and a GPU takes (README, logbook "Smoke and quick on a 16-core H200
# machine"). NNCodec is left out (its own virtualenv is not there).
#
# Before the call, here: put the wheels the machine lacks (bitarray, zstandard, torch-pruning,
# for its Python 3.12) in .gpu/whl and Debian's Fashion-MNIST .gz files in .gpu/fm, with .gpu
# ignored (.git/info/exclude); call with carry [".gpu"] and a timeout_s of SMOKE_T + QUICK_T
# + 150 or more (set-up, summaries, the dry run). Everything goes to $OUT/log as well, and each
# run's whole output to $OUT/<profile>.log, so a limit that kills the command leaves them.
# Locally (a check of the script): LOCAL=1 PY=.venv/bin/python OUT=/tmp/g SMOKE_T=30 QUICK_T=10
set -u
OUT=${OUT:?set OUT}; PY=${PY:-python3}
export PYTHONUNBUFFERED=1 APPROX_OFFLINE=1
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log") 2>&1
if [ -z "${LOCAL:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .gpu/whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site:$PWD
  nvidia-smi -L
else
  export PYTHONPATH=$PWD
fi
mkdir -p /tmp/gdata/FashionMNIST/raw
for f in .gpu/fm/*.gz; do gunzip -c "$f" > "/tmp/gdata/FashionMNIST/raw/$(basename "$f" .gz)"; done
echo "cores $(nproc)"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
stages() {  # profile, seconds
  local t0=$(date +%s)
  timeout "$2" $PY -m approxlib report --data-dir /tmp/gdata --models-dir /tmp/gm \
    --profile "$1" --stages-only --quiet --set 'nncodec_qps=[]' --out "/tmp/gout-$1" \
    > "$OUT/$1.log" 2>&1  # whole, as it goes: a killed command still leaves it
  local rc=$?
  tail -4 "$OUT/$1.log"
  echo "$1: exit $rc, $(( $(date +%s) - t0 )) s wall"
  $PY benchmarks/stage_summary.py --profile "$1" --models-dir /tmp/gm --set 'nncodec_qps=[]'
}
stages smoke "${SMOKE_T:-300}"
stages quick "${QUICK_T:-200}"
timeout 60 $PY -m approxlib report --data-dir /tmp/gdata --models-dir /tmp/gm --profile quick --dry-run \
  --set 'nncodec_qps=[]' --out /tmp/gout-dry 2>&1 | tail -2
