#!/usr/bin/env bash
# The GPU check, ready for one call on a borrowed CUDA machine that has JAX but no TensorFlow,
# no Keras and no network (README: "Backends and GPUs").
#
#   bash scripts/gpu_check.sh --prepare   # here (network): wheels -> .whl/, the data -> .gpu_data/, carry size
#   bash scripts/gpu_check.sh [ARGS]      # there: install the wheels to a temp folder, KERAS_BACKEND=jax,
#                                         # python -m benchmarks.gpu_check ARGS (e.g. --budget-s 300)
#
# Both folders are git-ignored; name them in the device tool's carry: [".whl", ".gpu_data"].
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${GPU_CHECK_WHEELS:-.whl}  # tests point it elsewhere to use the installed Keras
DATA=.gpu_data/fashion-mnist
LIMIT_MIB=60
# What the GPU machine lacks for Python 3.12 x86-64 (it has numpy, pandas, scikit-learn, matplotlib,
# seaborn, grpcio, protobuf, rich, h5py, absl-py, ml-dtypes and JAX with CUDA). six: keras-tuner needs it
# without declaring it.
PACKAGES=(keras==3.15.1 keras-tuner==1.4.8 kt-legacy==1.0.5 namex==0.1.0 optree==0.20.0 six==1.17.0)
FILES=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)

die() { echo "gpu_check: $*" >&2; exit 2; }

bytes_of() { du -sb "$@" 2>/dev/null | awk '{s += $1} END {print s + 0}'; }

prepare() {
  local src=${FASHION_TUNER_DATA:-/usr/share/datasets/fashion-mnist}
  for f in "${FILES[@]}"; do [ -f "$src/$f" ] || die "$src/$f is missing; set FASHION_TUNER_DATA to the folder of the four IDX files"; done
  rm -rf "$WHEELS"
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$WHEELS" "${PACKAGES[@]}" \
    || die "pip download failed (no network?)"
  mkdir -p "$DATA"
  for f in "${FILES[@]}"; do cp "$src/$f" "$DATA/$f"; done
  # what the device tool sends: tracked + untracked-not-ignored files, plus the two carried folders
  local project carried total
  project=$(git ls-files -z -co --exclude-standard | xargs -0 -r du -cb 2>/dev/null | awk '$2 == "total" {s += $1} END {print s + 0}')
  carried=$(bytes_of "$WHEELS" "$DATA")
  total=$((project + carried))
  ls -l "$WHEELS" | awk 'NR > 1 {printf "  %-60s %8.2f MiB\n", $9, $5 / 1048576}'
  printf 'wheels %.1f MiB, data %.1f MiB, project %.1f MiB: carry total %.1f MiB (limit %d MiB)\n' \
    "$(echo "$(bytes_of "$WHEELS") / 1048576" | bc -l)" "$(echo "$(bytes_of "$DATA") / 1048576" | bc -l)" \
    "$(echo "$project / 1048576" | bc -l)" "$(echo "$total / 1048576" | bc -l)" "$LIMIT_MIB"
  [ "$total" -le $((LIMIT_MIB * 1048576)) ] || die "the carry is over $LIMIT_MIB MiB"
  echo "ready: on the GPU machine run 'bash scripts/gpu_check.sh' with carry [\"$WHEELS\", \".gpu_data\"]"
}

if [ "${1:-}" = "--prepare" ]; then
  prepare
  exit 0
fi

if compgen -G "$WHEELS/*.whl" >/dev/null; then
  site=$(mktemp -d /tmp/gpu_check_site.XXXXXX)
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$WHEELS"/*.whl \
    || die "installing the wheels of $WHEELS into $site failed"
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
elif ! "$PY" -c "import keras, keras_tuner" 2>/dev/null; then
  die "no wheels in $WHEELS and Keras is not installed: run 'bash scripts/gpu_check.sh --prepare' first and carry .whl and .gpu_data"
fi
if [ -f "$DATA/${FILES[0]}" ]; then export FASHION_TUNER_DATA="$PWD/$DATA"; fi
export KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1
exec "$PY" -m benchmarks.gpu_check "$@"
