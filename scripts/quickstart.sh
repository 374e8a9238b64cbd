#!/usr/bin/env bash
# Quick start: set up, then a short real MLP search on the real Fashion-MNIST that ends with a
# summary table (about 2-3 minutes on 2 CPU cores), with the default sampler (priorband). Extra arguments go
# to `main.py search`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python main.py search --space mlp --max-epochs 4 --factor 3 --subset 10000 \
  --name quickstart "$@"
