"""Peer (a): a plain Keras Tuner script in the style of the hand-written attempt.

    python -m benchmarks.plain_keras_tuner --epoch-budget 80 [--subset N] [--work-dir DIR]

What the hand-written attempt did (see the project brief): Hyperband over a Flatten + Dense
stack (1-9 layers of 24-576 units, ReLU), the learning rate a choice of {1, 1e-1 .. 1e-6},
one-hot targets with categorical cross-entropy, objective ``val_accuracy``, ``max_epochs=15,
factor=2``, no EarlyStopping, Keras' default batch size (32), pixels scaled by 1/255, then the
best model (Keras Tuner's checkpoint of its best epoch) evaluated once on the test images.

Only the data loading and the train/validation/test split come from fashion_tuner (so all peers
see the same images); everything else is plain Keras and Keras Tuner.

Equal budget: Hyperband's epoch cost is fixed by ``max_epochs`` and ``factor``, and without
EarlyStopping every trial trains exactly ``tuner/epochs - tuner/initial_epoch`` epochs. The
script keeps ``factor=2`` and runs the whole number of Hyperband iterations of
``max_epochs=15`` whose cost is nearest to the budget; a budget smaller than one iteration
lowers ``max_epochs`` to the value whose one iteration is nearest to it. It prints one JSON line: test accuracy, epochs actually used, wall times.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from benchmarks.common import SEED, emit, load_split_data
from benchmarks.seeds import wilson
from fashion_tuner.stats import CI_METHOD

MAX_EPOCHS = 15
FACTOR = 2
LEARNING_RATES = [1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6]


def hyperband_iteration_epochs(max_epochs: int, factor: int) -> int:
    """Epochs one Hyperband iteration trains without early stopping (Keras Tuner's bracket formulas)."""
    brackets, e = 0, max_epochs
    while e >= 1:
        e /= factor
        brackets += 1
    end0 = math.ceil(1 + math.log(max_epochs, factor))

    def size(b, r):
        return math.ceil(end0 / (b + 1) * factor ** (b - r))

    def epochs(b, r):
        return math.ceil(max_epochs / factor ** (b - r))

    total = 0
    for b in range(brackets):
        total += size(b, 0) * epochs(b, 0)
        total += sum(size(b, r) * (epochs(b, r) - epochs(b, r - 1)) for r in range(1, b + 1))
    return total


def plan(budget: int, max_epochs: int = MAX_EPOCHS, factor: int = FACTOR) -> dict:
    """The Hyperband settings whose epoch cost is nearest to ``budget``: whole iterations of
    ``max_epochs`` when one fits, else one iteration of a smaller ``max_epochs``.

    Returns ``{"max_epochs", "factor", "hyperband_iterations", "planned_epochs"}``.
    """
    one = hyperband_iteration_epochs(max_epochs, factor)
    if one <= budget:
        iterations = max(1, round(budget / one))
        return {"max_epochs": max_epochs, "factor": factor, "hyperband_iterations": iterations,
                "planned_epochs": one * iterations}
    best = min(range(1, max_epochs + 1), key=lambda m: (abs(hyperband_iteration_epochs(m, factor) - budget), -m))
    return {"max_epochs": best, "factor": factor, "hyperband_iterations": 1,
            "planned_epochs": hyperband_iteration_epochs(best, factor)}


def build_model(hp):
    import keras

    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten()])
    for i in range(hp.Int("num_layers", 1, 9)):
        model.add(keras.layers.Dense(hp.Int(f"units_{i}", min_value=24, max_value=576, step=24), activation="relu"))
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(optimizer=keras.optimizers.Adam(hp.Choice("learning_rate", LEARNING_RATES)),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epoch-budget", type=int, required=True, help="total epochs over all trials")
    parser.add_argument("--subset", type=int, default=None, help="stratified training subset (quick runs)")
    parser.add_argument("--work-dir", default=None, help="Keras Tuner directory (default: a temp dir)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--skip-md5", action="store_true")
    parser.add_argument("--val-size", type=float, default=None, help="validation fraction of the test set (default 0.6)")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    _, (x_tr, y_tr), (x_val, y_val), (x_te, y_te) = load_split_data(
        args.subset, args.seed, args.data_dir, args.skip_md5, val_size=args.val_size)
    import keras
    import keras_tuner as kt

    keras.utils.set_random_seed(args.seed)
    x_tr, x_val, x_te = (a.astype("float32") / 255.0 for a in (x_tr, x_val, x_te))
    y_tr, y_val, y_te = (keras.utils.to_categorical(a, 10) for a in (y_tr, y_val, y_te))

    budget = plan(args.epoch_budget)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="plain_kt_"))
    tuner = kt.Hyperband(build_model, objective="val_accuracy", max_epochs=budget["max_epochs"],
                         factor=budget["factor"], hyperband_iterations=budget["hyperband_iterations"],
                         seed=args.seed, directory=str(work), project_name="plain_hyperband", overwrite=True)

    class CountEpochs(keras.callbacks.Callback):
        epochs = 0

        def on_epoch_end(self, epoch, logs=None):
            CountEpochs.epochs += 1

    search_start = time.perf_counter()
    tuner.search(x_tr, y_tr, epochs=budget["max_epochs"], validation_data=(x_val, y_val),
                 callbacks=[CountEpochs()], verbose=0)
    search_s = time.perf_counter() - search_start

    eval_start = time.perf_counter()
    best = tuner.get_best_models(1)[0]
    loss, acc = best.evaluate(x_te, y_te, verbose=0)
    eval_s = time.perf_counter() - eval_start
    best_trial = tuner.oracle.get_best_trials(1)[0]
    n = len(y_te)
    emit({"peer": "keras_tuner_hyperband_mlp", "test_accuracy": round(float(acc), 4),
          "test_accuracy_ci95": wilson(float(acc), n), "ci_method": CI_METHOD, "test_loss": round(float(loss), 4),
          "val_accuracy": round(float(best_trial.score), 4),
          "best_hyperparameters": {k: v for k, v in best_trial.hyperparameters.values.items()},
          "trials": len(tuner.oracle.trials), "epoch_budget": args.epoch_budget,
          "epochs_used": CountEpochs.epochs, **budget, "batch_size": 32,
          "search_s": round(search_s, 1), "eval_s": round(eval_s, 1),
          "total_s": round(time.perf_counter() - started, 1),
          "n_train": len(y_tr), "n_val": len(y_val), "n_test": n})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
