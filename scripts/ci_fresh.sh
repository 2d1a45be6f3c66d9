#!/usr/bin/env bash
# Time `.ci/run` as on a fresh machine: a clean clone of HEAD with every cache of its own (cargo registry and
# builds, pip, libtorch, evcxr kernel and its build folder, generated data sets), ../shared linked beside it.
# Only the Rust toolchain and the apt packages are shared with this machine.
#
#   scripts/ci_fresh.sh [WORKDIR]     default WORKDIR: a new folder under /tmp; the log is WORKDIR/ci.log
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d /tmp/yolo-lab-ci.XXXXXX)}
mkdir -p "$work"
git clone --quiet "$repo" "$work/main"
ln -sfn "$(cd "$repo/../shared" && pwd)" "$work/shared"
export CI=true
export YOLO_LAB_CACHE="$work/cache" CARGO_HOME="$work/cargo" PIP_CACHE_DIR="$work/pip" XDG_CACHE_HOME="$work/xdg"
export PATH="$HOME/.cargo/bin:$PATH"   # rustup's proxies; the toolchains stay in RUSTUP_HOME
echo "ci_fresh: $work (log: $work/ci.log)"
start=$(date +%s)
status=0
(cd "$work/main" && .ci/run) >"$work/ci.log" 2>&1 || status=$?
took=$(( $(date +%s) - start ))
tail -5 "$work/ci.log"
echo "ci_fresh: .ci/run exited $status after $took s ($(( took / 60 )) min)"
exit $status
