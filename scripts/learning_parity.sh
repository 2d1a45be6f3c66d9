#!/usr/bin/env bash
# Learning parity (issue 19): the same recipe trained by YOLOv5's train.py and by yolo-lab, k seeds each,
# alternating the two programs; every run's results.csv is kept in bench/results/learning_parity/.
#   scripts/learning_parity.sh [IMG] [EPOCHS] [SEEDS...]      (default: 160 100 0 1 2)
# Needs the YOLOv5 reference environment of ../shared/bench/README.md ($REF_ROOT, default ~/ref) and a release
# build (`cargo build --release`; YOLO_LAB_BIN=path runs a copy, so a rebuild cannot change the binary halfway).
# Summarise with scripts/learning_parity_summary.py. A benchmark, not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
img=${1:-160}; epochs=${2:-100}; shift $(( $# >= 2 ? 2 : $# )) || true
seeds=("$@"); [ ${#seeds[@]} -eq 0 ] && seeds=(0 1 2)
REF_ROOT=${REF_ROOT:-$HOME/ref}
repo=$(pwd)
bin=${YOLO_LAB_BIN:-target/release/yolo-lab}
data=$("$bin" data --data shapes --img "$img" --out /tmp/lp-data 2>&1 | sed -n 's/.*root \([^ ]*\).*/\1/p' | head -1)
[ -f "$data/data.yaml" ] || { echo "learning_parity: no shapes data set found" >&2; exit 1; }
out=$repo/bench/results/learning_parity; mkdir -p "$out"
runs=/tmp/learning-parity-runs; mkdir -p "$runs"
for s in "${seeds[@]}"; do
  tag="img${img}_e${epochs}_s${s}"
  if [ ! -f "$out/yolov5_$tag.csv" ]; then
    ( cd "$REF_ROOT/yolov5" && source "$repo/../shared/bench/yolov5_env.sh" && \
      unshare -n -- "$REF_PY" train.py --img "$img" --batch 16 --epochs "$epochs" --data "$data/data.yaml" \
        --cfg models/yolov5n.yaml --weights '' --hyp data/hyps/hyp.scratch-low.yaml --seed "$s" --device cpu \
        --workers 2 --noplots --project "$runs" --name "yolov5_$tag" --exist-ok ) > "$runs/yolov5_$tag.log" 2>&1
    cp "$runs/yolov5_$tag/results.csv" "$out/yolov5_$tag.csv"
    echo "learning_parity: yolov5 $tag done"
  fi
  if [ ! -f "$out/yolo-lab_$tag.csv" ]; then
    "$bin" train --data shapes --cfg yolov5n --hyp scratch-low --img "$img" --batch-size 16 \
      --epochs "$epochs" --seed "$s" --device cpu --workers 2 --project "$runs" --name "yolo-lab_$tag" \
      --exist-ok > "$runs/yolo-lab_$tag.log" 2>&1
    cp "$runs/yolo-lab_$tag/results.csv" "$out/yolo-lab_$tag.csv"
    echo "learning_parity: yolo-lab $tag done"
  fi
done
