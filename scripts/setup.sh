#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine with Python 3.11: the data set (Debian package
# dataset-fashion-mnist), a virtual environment in .venv, and requirements.txt installed in it.
# Re-running skips whatever is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else return 1; fi; }
apt_install() {
  command -v apt-get >/dev/null 2>&1 || return 1
  if [ ! -f /tmp/.fashion_tuner_apt_updated ]; then as_root apt-get update -qq && touch /tmp/.fashion_tuner_apt_updated; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ -z "${FASHION_TUNER_DATA:-}" ]; then
  echo "setup: installing the data set (apt-get install dataset-fashion-mnist)"
  apt_install dataset-fashion-mnist || echo "setup: could not install dataset-fashion-mnist; the loader will look in ~/.keras/datasets and try the Keras download" >&2
fi

if [ ! -x .venv/bin/pip ]; then
  echo "setup: creating .venv"
  rm -rf .venv
  if ! "$PY" -m venv .venv >/dev/null 2>&1; then
    rm -rf .venv
    apt_install python3-venv || { echo "setup: '$PY -m venv' failed; install python3-venv" >&2; exit 1; }
    "$PY" -m venv .venv
  fi
fi

want=$(md5sum requirements.txt | cut -d' ' -f1)
if [ "$(cat .venv/.requirements.md5 2>/dev/null || true)" != "$want" ]; then
  echo "setup: pip install -r requirements.txt (first time: a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  echo "$want" > .venv/.requirements.md5
fi
