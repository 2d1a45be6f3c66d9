#!/usr/bin/env bash
# Install libtorch 2.13.0 (the version tch 0.26 needs) and link it at ./.libtorch.
#
#   scripts/setup_libtorch.sh          CPU layout (default; what CI uses): include/ and the five shared
#                                      libraries extracted from three PyPI wheels, ~490 MB, no Python torch.
#   scripts/setup_libtorch.sh cuda     full CUDA build in a virtualenv (GPU machines), ~4.7 GB.
#
# Idempotent: the payload is cached outside the checkout (YOLO_LAB_CACHE, default ~/.cache/yolo-lab) and only
# re-linked when it is already there. See shared spec toolchain.md for why each file is needed.
set -euo pipefail

TORCH_VERSION=2.13.0
CUDART_VERSION=13.0.96   # torch's pin cuda-toolkit[cudart]==13.0.3
CUPTI_VERSION=13.0.85    # torch's pin cuda-toolkit[cupti]==13.0.3
layout=${1:-cpu}
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${YOLO_LAB_CACHE:-$HOME/.cache/yolo-lab}
python=${PYTHON:-python3}

link() {
  local target=$1
  if [ "$(readlink "$repo/.libtorch" 2>/dev/null || true)" != "$target" ]; then
    ln -sfn "$target" "$repo/.libtorch"
    echo "setup_libtorch: .libtorch -> $target (run 'cargo clean -p torch-sys' if you switched layouts)"
  else
    echo "setup_libtorch: .libtorch -> $target (already installed)"
  fi
}

case "$layout" in
cpu)
  dest="$cache/libtorch-$TORCH_VERSION-cpu"
  if [ -f "$dest/build-version" ] && [ -f "$dest/lib/libtorch_cpu.so" ]; then link "$dest"; exit 0; fi
  command -v "$python" >/dev/null || { echo "setup_libtorch: $python not found (install python3 and pip)" >&2; exit 1; }
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/.libtorch-download.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  echo "setup_libtorch: downloading torch==$TORCH_VERSION wheels from PyPI (~540 MB) ..."
  "$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$work/wheels" \
    "torch==$TORCH_VERSION" "nvidia-cuda-runtime==$CUDART_VERSION" "nvidia-cuda-cupti==$CUPTI_VERSION"
  "$python" - "$work/wheels" "$work/libtorch" "$TORCH_VERSION" <<'PY'
import pathlib, shutil, sys, zipfile
wheels, out, version = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
libs = {"libtorch_cpu.so", "libc10.so", "libtorch.so", "libgomp.so.1", "libcudart.so.13", "libcupti.so.13"}
(out / "lib").mkdir(parents=True)
found = set()
for wheel in sorted(wheels.glob("*.whl")):
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            name = info.filename
            base = name.rsplit("/", 1)[-1]
            if name.startswith("torch/include/") and not name.endswith("/"):
                dest = out / "include" / name[len("torch/include/"):]
            elif base in libs and "/lib/" in "/" + name:
                dest = out / "lib" / base
                found.add(base)
            else:
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(dest, "wb") as dst:
                shutil.copyfileobj(src, dst)
missing = libs - found
if missing:
    sys.exit(f"setup_libtorch: wheels lack {sorted(missing)}")
(out / "build-version").write_text(version + "\n")
PY
  rm -rf "$dest"
  mv "$work/libtorch" "$dest"   # atomic: a half-extracted folder is never at $dest
  link "$dest"
  ;;
cuda)
  venv="$cache/torch-$TORCH_VERSION-cuda"
  site() { "$venv/bin/python" -c 'import torch, os; print(os.path.dirname(torch.__file__))'; }
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import torch; assert torch.__version__.startswith('$TORCH_VERSION')" 2>/dev/null; then
    link "$(site)"; exit 0
  fi
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet "torch==$TORCH_VERSION"
  link "$(site)"
  ;;
*)
  echo "usage: $0 [cpu|cuda]" >&2; exit 2 ;;
esac
