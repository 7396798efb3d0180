#!/usr/bin/env bash
# Issue 13's GPU checks for a lent GPU machine with little device time (15 min in all, 10 min a call):
#   tests       tests/test_gpu.py (12 s on an H200)
#   round-rule  scripts/bench_round_rule.py on 20 subnets at 224, 5 rounds each (the fastest and the median rule)
#   fp32, fp16  scripts/bench_profile.py on targets/gpu-torch.yaml / gpu-torch-fp16.yaml at 224, 50 networks,
#               30 held-out subnets (on an H200: profile 3-4 min, held-out ~2.5 min, each)
# Steps are named on the command line (default: tests fp32); each runs under its own time limit, and a profile
# cut off by it resumes in the next call where the machine is still warm (its journal and LUT stay in
# runs/gpu-check/lut, and --reuse measures nothing twice). What it prints goes to gpu-check.log, and the LUTs
# and held-out files are copied, in $OUT (the device tool's folder that comes back), else runs/gpu-check.
# The machine has no network: packages it lacks travel as wheels in .whl (the device tool's README says how
# to fetch them for its Python), installed here first. From the device tool:
#   run(command="bash scripts/gpu_check.sh tests fp32", carry=[".whl"], timeout_s=595)
#   run(command="bash scripts/gpu_check.sh fp16", carry=[".whl"], timeout_s=595)
set -uo pipefail
cd "$(dirname "$0")/.."
WORK=runs/gpu-check
DEST=${OUT:-$WORK}
mkdir -p "$WORK/lut" "$DEST"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi

failed=0
run_step() {  # LIMIT_S COMMAND...: one step under its time limit, its exit status reported (124: cut off by the limit)
  local limit=$1 status
  shift
  echo "=== $(date -u +%T) (limit ${limit} s): $*"
  timeout "$limit" "$@"
  status=$?
  echo "=== exit status $status"
  [ "$status" = 0 ] || failed=1
}

profile() {  # TARGET: a profile and its held-out subnets, resumed where an earlier call stopped
  local lut=$WORK/lut/$1.csv reuse=()
  [ -e "$lut" ] || [ -e "$lut.journal" ] && reuse=(--reuse)
  run_step 420 python3 scripts/bench_profile.py --target "targets/$1.yaml" --resolutions 224 --samples 50 \
    --held-out 30 "${reuse[@]}" --out "$lut"
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(tests fp32)
for step in "${steps[@]}"; do
  case $step in
    tests | round-rule | fp32 | fp16) ;;
    *) echo "gpu_check.sh: unknown step '$step' (steps: tests, round-rule, fp32, fp16)" >&2; exit 2 ;;
  esac
done
{
  python3 -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU visible to torch')"
  for step in "${steps[@]}"; do
    case $step in
      tests) run_step 120 python3 -m pytest -q tests/test_gpu.py ;;
      round-rule) run_step 240 python3 scripts/bench_round_rule.py --target targets/gpu-torch.yaml --resolutions 224 \
                    --subnets 20 --rounds 5 --out "$WORK/round-rule.json" ;;
      fp32) profile gpu-torch ;;
      fp16) profile gpu-torch-fp16 ;;
    esac
  done
  exit "$failed"
} 2>&1 | tee -a "$DEST/gpu-check.log"
status=${PIPESTATUS[0]}
cp -r "$WORK/lut" "$DEST/" 2>/dev/null
[ -e "$WORK/round-rule.json" ] && cp "$WORK/round-rule.json" "$DEST/"
exit "$status"
