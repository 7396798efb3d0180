#!/usr/bin/env bash
# The README's quick start: profile (small), fit an accuracy predictor from DATA, search, pick under
# a latency limit, export with WEIGHTS, measure the exported model on the CPU. No network is needed.
#   DATA=top1.jsonl WEIGHTS=ofa_mbv3_d234_e346_k357_w1.0 [CALIB=DIR] [OUT=runs/quickstart] bash scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATA:?set DATA to a JSON-lines file of OFA-MBV3 w1.0 configs with their measured top1 (resolution 160 among them)}"
: "${WEIGHTS:?set WEIGHTS to the ofa_mbv3_d234_e346_k357_w1.0 supernet checkpoint}"
OUT=${OUT:-runs/quickstart}
SPACE=ofa-mbv3-w1.0
bash scripts/setup.sh
set -x
python3 -m ofahw profile --target cpu --space $SPACE --resolutions 160 --samples 20 --out "$OUT/lut/cpu.csv" --no-progress
python3 -m ofahw accuracy fit --data "$DATA" --space $SPACE --out "$OUT/acc.json"
python3 -m ofahw search --lut "$OUT/lut/cpu.csv" --accuracy "$OUT/acc.json" --algorithm nsga2 --pop-size 50 --generations 40 \
    --out "$OUT/front" --fresh --no-progress
{ set +x; } 2>/dev/null
LIMIT=$(python3 -c "import sys, numpy as np; from ofahw.search.outputs import read_front; \
print(f\"{np.median(read_front(sys.argv[1]).column('latency_ms@cpu')):.3f}\")" "$OUT/front/pareto.csv")
echo "latency limit: the front's median predicted latency on cpu, $LIMIT ms"
set -x
python3 -m ofahw pick --front "$OUT/front/pareto.csv" --constraint "latency@cpu<=$LIMIT"
rm -rf "$OUT/model"
python3 -m ofahw export --space $SPACE --front "$OUT/front/pareto.csv" --constraint "latency@cpu<=$LIMIT" \
    --weights "$WEIGHTS" ${CALIB:+--calib "$CALIB"} --lut "$OUT/lut/cpu.csv" --target cpu --measure --out "$OUT/model"
{ set +x; } 2>/dev/null
echo "the front's plot: $OUT/front/pareto.png; the model: $OUT/model/model.json"
