#!/usr/bin/env bash
# On a lent GPU machine (device `run`): the smoke profile's stages (SMOKE_T seconds; 0 skips
# them), then as much of quick as fits (QUICK_T seconds; QUICK_SECTIONS, e.g. G, limits it),
# and the dry run's price for the rest of quick from that machine's own records: what a
# machine with more cores and a GPU takes (README, logbook "Smoke and quick on a 16-core H200
# machine"). NNCodec is left out (its own virtualenv is not there). Smoke ran to the end on
# 2026-12-04 (466 s) and quick cannot within one lease, so the defaults spend the call on
# quick's section G, whose QAT, scratch and channel fine-tuning no lease has recorded yet.
#
# Before the call, here: put the wheels the machine lacks (bitarray, zstandard, torch-pruning,
# for its Python 3.12) in .gpu/whl and Debian's Fashion-MNIST .gz files in .gpu/fm, with .gpu
# ignored (.git/info/exclude); call with carry [".gpu"] and a timeout_s of SMOKE_T + QUICK_T
# + 90 or more (set-up, summaries, the dry run; about 40 s on 2026-12-04). Everything goes to $OUT/log as well, and each
# run's whole output to $OUT/<profile>.log, so a limit that kills the command leaves them.
# Locally (a check of the script): LOCAL=1 PY=.venv/bin/python OUT=/tmp/g SMOKE_T=30 QUICK_T=10
# The call of 2026-12-04: OUT=$OUT SMOKE_T=510 QUICK_T=1 QUICK_SECTIONS= bash benchmarks/gpu_stages.sh
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
stages() {  # profile, seconds, then options of approx report
  local t0=$(date +%s)
  timeout "$2" $PY -m approxlib report --data-dir /tmp/gdata --models-dir /tmp/gm \
    --profile "$1" --stages-only --quiet --set 'nncodec_qps=[]' --out "/tmp/gout-$1" "${@:3}" \
    > "$OUT/$1.log" 2>&1  # whole, as it goes: a killed command still leaves it
  local rc=$?
  tail -4 "$OUT/$1.log"
  echo "$1: exit $rc, $(( $(date +%s) - t0 )) s wall"
  $PY benchmarks/stage_summary.py --profile "$1" --models-dir /tmp/gm --set 'nncodec_qps=[]'
}
SMOKE_T=${SMOKE_T:-0}; QUICK_SECTIONS=${QUICK_SECTIONS-G}
[ "$SMOKE_T" -gt 0 ] && stages smoke "$SMOKE_T"
stages quick "${QUICK_T:-480}" ${QUICK_SECTIONS:+--sections "$QUICK_SECTIONS"}
timeout 60 $PY -m approxlib report --data-dir /tmp/gdata --models-dir /tmp/gm --profile quick --dry-run \
  --set 'nncodec_qps=[]' --out /tmp/gout-dry 2>&1 | tail -2
