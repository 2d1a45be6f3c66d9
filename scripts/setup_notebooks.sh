#!/usr/bin/env bash
# Install what running the notebooks needs: a Python venv with nbconvert/nbclient (and JupyterLab with `lab`),
# the evcxr Rust kernel (evcxr_jupyter 0.22.0, pinned: the build-reuse flags below are specific to it), and the
# kernel spec with the environment the cell builds need (evcxr builds cells in its own cargo project and does
# not read this repository's .cargo/config.toml). Idempotent; everything lives under $YOLO_LAB_CACHE.
#
#   scripts/setup_notebooks.sh        nbconvert + kernel (what `make notebooks` needs)
#   scripts/setup_notebooks.sh lab    also JupyterLab (what `make lab` needs)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${YOLO_LAB_CACHE:-$HOME/.cache/yolo-lab}
venv="$cache/venv"
evcxr_root="$cache/evcxr"
EVCXR_VERSION=0.22.0

"$repo/scripts/setup.sh"
libtorch=$(readlink -f "$repo/.libtorch")
# evcxr links cells with -Cprefer-dynamic and an $ORIGIN rpath to libstd that is one folder off for build
# folders deeper than /tmp/x: put the toolchain's libraries on the kernel's library path as well
sysroot=$(rustc --print sysroot)
rustlib="$sysroot/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/lib"

if [ ! -x "$venv/bin/jupyter-nbconvert" ]; then
  echo "setup_notebooks: creating $venv with nbconvert"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet "nbconvert==7.17.2" "nbclient==0.11.0" "ipykernel" >/dev/null
fi
if [ "${1:-}" = lab ] && [ ! -x "$venv/bin/jupyter-lab" ]; then
  echo "setup_notebooks: installing JupyterLab"
  "$venv/bin/pip" install --quiet "jupyterlab==4.6.6"
fi

if [ ! -x "$evcxr_root/bin/evcxr_jupyter" ]; then
  echo "setup_notebooks: building evcxr_jupyter $EVCXR_VERSION (about 10 CPU-minutes, once)"
  cargo install evcxr_jupyter --locked --version "$EVCXR_VERSION" --root "$evcxr_root" --quiet
fi

# evcxr settings for `make lab` and the full notebook runs: cells and dependencies at opt-level 1 (trains several
# times faster than 0, builds faster than evcxr's default 2); run_notebooks.py rewrites it with EVCXR_OPT
if [ ! -f "$cache/evcxr-config/evcxr.toml" ]; then
  mkdir -p "$cache/evcxr-config"
  printf '[evcxr]\nopt_level = "1"\n' > "$cache/evcxr-config/evcxr.toml"
fi

# kernel spec inside the venv (nothing is written to the home folder)
kdir="$venv/share/jupyter/kernels/rust"
if [ ! -f "$kdir/kernel.json" ] || ! grep -q "$libtorch" "$kdir/kernel.json" || ! grep -q "$rustlib" "$kdir/kernel.json"; then
  JUPYTER_PATH="$venv/share/jupyter" JUPYTER_DATA_DIR="$venv/share/jupyter" "$evcxr_root/bin/evcxr_jupyter" --install >/dev/null
  found=$( (find "$venv/share/jupyter" "$HOME/.local/share/jupyter" -path '*kernels/rust/kernel.json' 2>/dev/null || true) | head -1)
  mkdir -p "$kdir"
  [ "$found" = "$kdir/kernel.json" ] || cp -r "$(dirname "$found")"/. "$kdir"/
  "$venv/bin/python" - "$kdir/kernel.json" "$libtorch" "$evcxr_root/bin/evcxr_jupyter" "$rustlib" <<'PY'
import json, sys
path, libtorch, exe, rustlib = sys.argv[1:]
spec = json.load(open(path))
spec["argv"][0] = exe
spec["env"] = {
    "LIBTORCH": libtorch,
    "LD_LIBRARY_PATH": libtorch + "/lib:" + rustlib,
    "OMP_WAIT_POLICY": "PASSIVE",
}
json.dump(spec, open(path, "w"), indent=1)
PY
  echo "setup_notebooks: kernel spec $kdir/kernel.json (LIBTORCH=$libtorch)"
fi
