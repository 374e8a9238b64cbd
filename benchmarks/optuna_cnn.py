"""Peer (b): Optuna's TPE sampler with its median pruner over the same CNN space.

    python -m benchmarks.optuna_cnn --epoch-budget 80 [--max-epochs 12] [--subset N]

The model is ``search_spaces/cnn.py``'s ``build_model(hp)`` itself, fed by
:class:`OptunaHyperParameters`, a Keras Tuner ``HyperParameters`` whose values come from an
Optuna trial (define-by-run, so conditional hyperparameters stay conditional), and trained by
the space's own ``fit`` (its plateau / cosine schedule and MixUp/CutMix). Optuna decides which
trials to run (``TPESampler``) and stops poor ones early (``MedianPruner`` on the per-epoch
validation accuracy); there is no EarlyStopping, as in Optuna's Keras examples. Each trial
trains at most ``--max-epochs`` epochs, and the study stops when the total epoch budget is spent
(the last trial is cut short to fit it exactly).

The score of a trial is its best epoch's validation accuracy; the best completed trial's
weights at that epoch (kept in memory, the model rebuilt from its values) are evaluated once
on the held-out test images after the study. Same data, same split,
same validation set as ``main.py search``. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import SEED, emit, load_split_data
from benchmarks.seeds import wilson
from fashion_tuner.stats import CI_METHOD


def geometric_values(low: int | float, high: int | float, step: int | float) -> list:
    """Keras Tuner's log sampling with a step: low, low*step, ... up to high."""
    values, v = [], low
    while v <= high * (1 + 1e-9):
        values.append(v)
        v = v * step
    return values


def suggest(trial, hp):
    """One Optuna suggestion for a Keras Tuner hyperparameter object (Int, Float, Choice, Boolean, Fixed)."""
    from keras_tuner.src.engine.hyperparameters import hp_types

    name = hp.name
    if isinstance(hp, hp_types.Fixed):
        return hp.value
    if isinstance(hp, hp_types.Boolean):
        return trial.suggest_categorical(name, [False, True])
    if isinstance(hp, hp_types.Choice):
        return trial.suggest_categorical(name, list(hp.values))
    log = hp.sampling in ("log", "reverse_log")
    if isinstance(hp, hp_types.Int):
        if log and hp.step and hp.step > 1:
            return trial.suggest_categorical(name, geometric_values(hp.min_value, hp.max_value, hp.step))
        return trial.suggest_int(name, hp.min_value, hp.max_value, step=1 if log else (hp.step or 1), log=log)
    if isinstance(hp, hp_types.Float):
        if hp.step and log:
            return trial.suggest_categorical(name, geometric_values(hp.min_value, hp.max_value, hp.step))
        if hp.step:
            value = trial.suggest_float(name, hp.min_value, hp.max_value, step=hp.step)
            return round(value, 10)
        return trial.suggest_float(name, hp.min_value, hp.max_value, log=log)
    raise TypeError(f"unsupported hyperparameter type {type(hp).__name__} for {name}")


def optuna_hyperparameters(trial):
    """A Keras Tuner ``HyperParameters`` whose active values are suggested by the Optuna ``trial``."""
    import keras_tuner as kt

    class OptunaHyperParameters(kt.HyperParameters):
        def _retrieve(self, hp):
            if self._exists(hp.name, hp.conditions):
                return self.values.get(hp.name) if self.is_active(hp) else None
            if self.is_active(hp) and hp.name not in self.values:
                self.values[hp.name] = suggest(trial, hp)
            return self._register(hp)  # keeps the suggested value; None when inactive

    return OptunaHyperParameters()


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epoch-budget", type=int, required=True, help="total epochs over all trials")
    parser.add_argument("--max-epochs", type=int, default=12, help="epochs per trial at most (cnn's default budget)")
    parser.add_argument("--subset", type=int, default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--skip-md5", action="store_true")
    parser.add_argument("--val-size", type=float, default=None, help="validation fraction of the test set (default 0.6)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--work-dir", default="results", help="cache folder for the data context")
    parser.add_argument("--progress", default=None,
                        help="append {time, score} per completed trial to this JSON-lines file (equal-time peers)")
    return parser.parse_args(argv)


class Study:
    """One Optuna study over the CNN space: epochs counted against the budget, the best completed
    trial's best-epoch weights kept in memory. ``data``: ``(x_tr, y_tr, x_val, y_val)`` model inputs."""

    def __init__(self, args: argparse.Namespace, space, data):
        self.args, self.space, self.data = args, space, data
        self.used, self.best_val, self.best = 0, -1.0, None

    def callback(self, trial):
        """A Keras callback: counts epochs, reports to the pruner, keeps the best epoch's weights."""
        import keras

        study = self

        class Report(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.pruned, self.best_val, self.best_weights = False, -1.0, None

            def on_epoch_end(self, epoch, logs=None):
                study.used += 1
                acc = float((logs or {}).get("val_accuracy", 0.0))
                if acc > self.best_val:
                    self.best_val, self.best_weights = acc, self.model.get_weights()
                trial.report(acc, epoch)
                if trial.should_prune():
                    self.pruned = True
                    self.model.stop_training = True
                if study.used >= study.args.epoch_budget:
                    self.model.stop_training = True

        return Report()

    def objective(self, trial):
        import keras
        import optuna

        keras.backend.clear_session()
        keras.utils.set_random_seed(self.args.seed + trial.number)
        hp = optuna_hyperparameters(trial)
        model = self.space.build_model(hp)
        report = self.callback(trial)
        x_tr, y_tr, x_val, y_val = self.data
        epochs = min(self.args.max_epochs, self.args.epoch_budget - self.used)
        self.space.fit(hp, model, x_tr, y_tr, validation_data=(x_val, y_val), epochs=epochs,
                       batch_size=int(hp.values["batch_size"]), callbacks=[report], verbose=0)
        if report.pruned:
            raise optuna.TrialPruned()
        if report.best_val > self.best_val:
            self.best_val = report.best_val
            self.best = {"trial": trial.number, "weights": report.best_weights, "hyperparameters": dict(hp.values)}
        if self.args.progress:
            from benchmarks.random_cnn import append_progress

            append_progress(self.args.progress, report.best_val, trial=trial.number,
                            hyperparameters=dict(hp.values))
        return report.best_val

    def run(self):
        """The study, stopped when the epoch budget is spent; returns the Optuna study."""
        import optuna

        def stop_at_budget(study, _trial):
            if self.used >= self.args.epoch_budget:
                study.stop()

        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=self.args.seed),
                                    pruner=optuna.pruners.MedianPruner())
        study.optimize(self.objective, callbacks=[stop_at_budget], catch=(ValueError, RuntimeError))
        return study


def evaluate_best(space, best: dict, x_te, y_te) -> None:
    """The best completed trial's best epoch, rebuilt from its values, evaluated once on the test split
    (``best`` gains ``test_loss`` and ``test_accuracy``)."""
    import keras
    import keras_tuner as kt

    hp = kt.HyperParameters()
    hp.values.update(best["hyperparameters"])
    keras.backend.clear_session()
    model = space.build_model(hp)
    model.set_weights(best["weights"])
    best["test_loss"], best["test_accuracy"] = (float(v) for v in model.evaluate(x_te, y_te, batch_size=1024,
                                                                                  verbose=0))


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = time.perf_counter()
    dataset, (x_tr, y_tr), (x_val, y_val), (x_te, y_te) = load_split_data(
        args.subset, args.seed, args.data_dir, args.skip_md5, val_size=args.val_size)
    import optuna

    from fashion_tuner import runs, spaces

    x_tr, x_val, x_te = (runs.to_model_input(a) for a in (x_tr, x_val, x_te))
    space = spaces.load_space("cnn")
    spaces.set_data_context(spaces.DataContext.from_data(dataset, x_tr, args.work_dir, args.seed))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run = Study(args, space, (x_tr, y_tr, x_val, y_val))
    search_start = time.perf_counter()
    study = run.run()
    search_s = time.perf_counter() - search_start
    counts: dict[str, int] = {}
    for t in study.trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    best = run.best or {}
    eval_start = time.perf_counter()
    if best:
        evaluate_best(space, best, x_te, y_te)
    eval_s = time.perf_counter() - eval_start
    acc, n = best.get("test_accuracy"), len(y_te)
    emit({"peer": "optuna_tpe_median_cnn", "test_accuracy": None if acc is None else round(acc, 4),
          "test_accuracy_ci95": wilson(acc, n), "ci_method": CI_METHOD,
          "test_loss": None if acc is None else round(best["test_loss"], 4), "val_accuracy": round(run.best_val, 4),
          "best_trial": best.get("trial"), "best_hyperparameters": best.get("hyperparameters"),
          "trials": len(study.trials), "trial_states": counts, "epoch_budget": args.epoch_budget,
          "epochs_used": run.used, "max_epochs": args.max_epochs, "optuna": optuna.__version__,
          "search_s": round(search_s, 1), "eval_s": round(eval_s, 1), "total_s": round(time.perf_counter() - started, 1),
          "n_train": len(y_tr), "n_val": len(y_val), "n_test": n})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
