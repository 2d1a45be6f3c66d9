#!/usr/bin/env bash
# Install what yolo-lab needs besides Rust: a C++ compiler (torch-sys builds a C++ wrapper), Python 3 with
# pip and venv (libtorch comes from PyPI wheels; Jupyter for the notebooks), OpenSSL's headers with pkg-config
# (the PostgreSQL store's TLS), then libtorch itself.
# Idempotent; uses apt-get when run as root (or with sudo), otherwise says what to install.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

missing=()
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found: install Rust (https://rustup.rs) first" >&2; exit 1; }

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null && command -v apt-get >/dev/null; then
    echo "setup: installing ${missing[*]} with sudo"
    sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: missing ${missing[*]}; install them (e.g. 'sudo apt-get install ${missing[*]}') and run again" >&2
    exit 1
  fi
fi

"$repo/scripts/setup_libtorch.sh" "${YOLO_LAB_TORCH:-cpu}"
