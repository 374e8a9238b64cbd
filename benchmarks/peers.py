"""Peers at an equal budget: helpers and the evaluation of our own CNN search.

    python -m benchmarks.peers evaluate RUN_DIR [--data-dir DIR]

evaluates the best trial of a ``main.py search`` run as the search left it (its Keras Tuner
checkpoint, no retraining: the peers get no retraining either) once on the run's held-out test
split, and prints one JSON line. The peers themselves are ``benchmarks/plain_keras_tuner.py``
and ``benchmarks/optuna_cnn.py``; ``benchmarks/run.py`` runs all three and compares them.

The helpers below read only JSON and text (no TensorFlow), for the runner.
"""

from __future__ import annotations

import argparse
import copy
import re
import time
from pathlib import Path

from benchmarks.common import emit
from benchmarks.seeds import wilson
from fashion_tuner.runs import ranked_trials, read_trials
from fashion_tuner.stats import CI_METHOD

# With --verbose 2 Keras prints one line per finished epoch: "422/422 - 3s - 7ms/step - accuracy: ... - loss: ...".
EPOCH_LINE = re.compile(r"^\s*\d+/\d+ - .*\bloss: ", re.MULTILINE)


def count_epoch_lines(text: str) -> int:
    """Epochs trained, counted from the per-epoch lines of ``fit(verbose=2)`` output."""
    return len(EPOCH_LINE.findall(text or ""))


def nominal_epochs(run_dir: Path, max_epochs: int) -> int:
    """Epochs the tuner scheduled (Hyperband: ``tuner/epochs - tuner/initial_epoch`` per trial;
    others: ``max_epochs`` per trial): an upper bound, EarlyStopping may have stopped trials sooner."""
    total = 0
    for t in read_trials(run_dir):
        if t.get("status") not in ("COMPLETED", "FAILED"):
            continue
        values = (t.get("hyperparameters") or {}).get("values", {})
        if "tuner/epochs" in values:
            total += int(values["tuner/epochs"]) - int(values.get("tuner/initial_epoch", 0))
        else:
            total += max_epochs
    return total


def best_trial(run_dir: Path) -> dict | None:
    done = ranked_trials(read_trials(run_dir))
    return done[0] if done else None


def evaluate_run(run_dir: Path, data_dir: str | None = None) -> dict:
    """Best trial's checkpoint of one of our runs, evaluated on the run's held-out test split."""
    from fashion_tuner import runs, spaces

    started = time.perf_counter()
    run = runs.read_run(run_dir)
    trial = best_trial(run_dir)
    if trial is None:
        raise SystemExit(f"{run_dir} has no completed trial")
    dataset, _, (x_tr, _), _, (x_te, y_te) = runs.load_run_data(run, data_dir)
    import keras_tuner

    args = run.get("args", {})
    space = spaces.load_space(run["space"])
    spaces.set_data_context(spaces.DataContext.from_data(dataset, x_tr, Path(run_dir).parent, int(args.get("seed", 42)),
                                                     args.get("weights")))
    hp = keras_tuner.HyperParameters.from_config(copy.deepcopy(trial["hyperparameters"]))
    model = space.build_model(hp)
    model.load_weights(str(Path(run_dir) / f"trial_{trial['trial_id']}" / "checkpoint.weights.h5"))
    loss, acc = model.evaluate(x_te, y_te, batch_size=1024, verbose=0)
    n = len(y_te)
    return {"test_accuracy": round(float(acc), 4), "test_accuracy_ci95": wilson(float(acc), n), "ci_method": CI_METHOD,
            "test_loss": round(float(loss), 4), "val_accuracy": round(float(trial["score"]), 4),
            "best_trial": trial["trial_id"], "n_test": n, "eval_s": round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate a run's best trial checkpoint on its held-out test split")
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("evaluate")
    ev.add_argument("run_dir")
    ev.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    emit(evaluate_run(Path(args.run_dir), args.data_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
