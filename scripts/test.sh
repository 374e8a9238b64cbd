#!/usr/bin/env bash
# The test command: set up (scripts/setup.sh), then the whole suite, then its wall time.
# As root on Debian, this first installs the `chromium` package with apt-get (for the tests that render
# report.html and review.html headless); not as root, or without apt, those tests are skipped.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"` for the quick subset. Tests marked
# `benchmark` (they prove a benchmark harness at smoke size) and `server` (a real optuna-dashboard process over TCP)
# are left out: `bash scripts/test.sh -m benchmark` (or `-m server`) runs them.
# The suite runs on two pytest-xdist workers, one test file at a time each (--dist loadfile keeps a
# file's module fixtures in one process): 8m13s from a fresh clone on an idle 2-core Intel Xeon (2026-12-06;
# 7m30s before bfloat16 became the default there);
# 13m13s there beside one busy loop per core; 10m26s-12m59s on the 2-core AMD EPYC machines of earlier runs,
# 18m03s there beside one busy loop per core.
# Why it was over 10 minutes there, and what was tried: docs/design.md, "The test suite's time".
# The line at the end says what this run took.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "test: installing chromium as root with apt-get (for the HTML rendering tests)"
  else
    echo "test: chromium is not installed and cannot be installed here (needs root and apt); the HTML rendering tests will be skipped"
  fi
fi
bash scripts/setup.sh
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "test: chromium not installed; the HTML rendering tests will be skipped" >&2
fi
export TF_CPP_MIN_LOG_LEVEL=2
started=$(date +%s)
status=0
.venv/bin/python -m pytest -q -n 2 --dist loadfile -m "not benchmark and not server" "$@" || status=$?
elapsed=$(( $(date +%s) - started ))
echo "test: pytest took $((elapsed / 60))m$(printf '%02d' $((elapsed % 60)))s (exit $status)"
exit $status
