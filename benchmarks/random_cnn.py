"""Peer: plain Keras Tuner RandomSearch over our CNN space, for the equal-wall-time comparison.

    python -m benchmarks.random_cnn --progress FILE [--max-epochs 6] [--subset N] [--seed S]

The model and its training are ``search_spaces/cnn.py``'s own (``build_model`` and ``fit``), so
the only difference from ``main.py search --space cnn`` is the search: Keras Tuner's
``RandomSearch`` (objective ``val_accuracy``, each trial ``--max-epochs`` epochs, no
EarlyStopping, no Hyperband schedule, nothing of ours around the trials). Same data, split and
validation set. It runs until stopped (``benchmarks/anytime.py`` stops it at the wall budget) or
``--max-trials``; after each completed trial it appends ``{"time", "score", "trial", "hyperparameters"}`` to ``--progress``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.common import SEED, load_split_data


def append_progress(path: str | Path, score: float, **extra) -> None:
    """One JSON line ``{"time": unix s, "score": val accuracy, ...}`` appended and flushed."""
    with open(path, "a") as f:
        f.write(json.dumps({"time": time.time(), "score": float(score), **extra}) + "\n")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--progress", required=True, help="JSON-lines file: one line per completed trial")
    parser.add_argument("--max-epochs", type=int, default=6, help="epochs per trial (cnn's default budget)")
    parser.add_argument("--max-trials", type=int, default=10000)
    parser.add_argument("--subset", type=int, default=10000, help="training subset (cnn's default search subset)")
    parser.add_argument("--val-size", type=float, default=None)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--skip-md5", action="store_true")
    parser.add_argument("--work-dir", default="results/benchmarks", help="Keras Tuner directory and data cache")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    dataset, (x_tr, y_tr), (x_val, y_val), _ = load_split_data(args.subset, args.seed, args.data_dir, args.skip_md5,
                                                              val_size=args.val_size)
    import keras_tuner as kt

    from fashion_tuner import runs, spaces

    x_tr, x_val = runs.to_model_input(x_tr), runs.to_model_input(x_val)
    space = spaces.load_space("cnn")
    spaces.set_data_context(spaces.DataContext.from_data(dataset, x_tr, args.work_dir, args.seed,
                                                     max_epochs=args.max_epochs))

    class SpaceModel(kt.HyperModel):
        def build(self, hp):
            return space.build_model(hp)

        def fit(self, hp, model, *fit_args, **kwargs):
            return space.fit(hp, model, *fit_args, batch_size=int(hp.values["batch_size"]), **kwargs)

    class Random(kt.RandomSearch):
        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            done = self.oracle.trials[trial.trial_id]
            if done.status == "COMPLETED" and done.score is not None:
                append_progress(args.progress, done.score, trial=done.trial_id,
                                hyperparameters=dict(done.hyperparameters.values))

    tuner = Random(SpaceModel(), objective="val_accuracy", max_trials=args.max_trials, seed=args.seed,
                   directory=str(Path(args.work_dir)), project_name=f"random-cnn-s{args.seed}", overwrite=True)
    tuner.search(x_tr, y_tr, epochs=args.max_epochs, validation_data=(x_val, y_val), verbose=0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
