"""Overhead benchmark, bare side: a plain ``model.fit`` of the model ``space_timed_mlp.py`` trains.

    python -m benchmarks.overhead --epochs 3 --repeats 3 [--subset N] [--val-size F]

Same data and split as ``main.py search`` with the same ``--subset``/``--val-size``/``--seed``,
same model (mlp's defaults, normalised with the training mean/std), same batch size (128),
same validation data, no callbacks but the epoch timer. Prints one JSON line
``{"fits": [{"fit_s", "epoch_s": [...]}], ...}``. ``benchmarks/run.py`` compares it with the
timings of a search over ``benchmarks/space_timed_mlp.py`` (see :func:`summarize`).
"""

from __future__ import annotations

import argparse
import statistics
import time

from benchmarks.common import SEED, emit, load_split_data

BATCH_SIZE = 128


def steady_epochs(fits: list[dict]) -> list[float]:
    """Per-epoch seconds of every fit without its first epoch (graph tracing); all epochs if fits have one."""
    later = [t for f in fits for t in f["epoch_s"][1:]]
    return later or [t for f in fits for t in f["epoch_s"]]


def summarize(ours: dict, bare: dict, search_wall_s: float) -> dict:
    """Overhead figures from the timed search (``ours``: the space's timing file) and the bare fits."""
    ours_epoch = statistics.median(steady_epochs(ours["fits"]))
    bare_epoch = statistics.median(steady_epochs(bare["fits"]))
    fit_s = sum(f["fit_s"] for f in ours["fits"])
    in_search = (ours.get("earlier_s", 0.0) + ours["exit_at"] - ours["imported_at"]) if ours.get("exit_at") else None
    return {
        "epoch_s_ours": round(ours_epoch, 4), "epoch_s_bare": round(bare_epoch, 4),
        "epoch_ratio": round(ours_epoch / bare_epoch, 3),
        "fit_s_total": round(fit_s, 2), "trials": len(ours["fits"]),
        "search_s": None if in_search is None else round(in_search, 2),
        "outside_fit_share": None if in_search is None else round(1 - fit_s / in_search, 4),
        "process_s": round(search_wall_s, 2), "outside_fit_share_process": round(1 - fit_s / search_wall_s, 4),
        "goal_outside_fit_share": 0.05,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--subset", type=int, default=None)
    parser.add_argument("--val-size", type=float, default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--skip-md5", action="store_true")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)

    dataset, (x_tr, y_tr), val, _ = load_split_data(args.subset, args.seed, args.data_dir, args.skip_md5,
                                                    val_size=args.val_size)
    import keras
    import keras_tuner

    from fashion_tuner import runs, spaces
    from search_spaces import mlp

    x_tr, x_val = runs.to_model_input(x_tr), runs.to_model_input(val[0])
    spaces.set_data_context(spaces.DataContext.from_data(dataset, x_tr, "results", args.seed))
    from benchmarks.space_timed_mlp import EpochTimer

    fits = []
    for i in range(args.repeats):
        keras.backend.clear_session()
        keras.utils.set_random_seed(args.seed + i)
        model = mlp.build_model(keras_tuner.HyperParameters())
        timer = EpochTimer()
        started = time.perf_counter()
        model.fit(x_tr, y_tr, validation_data=(x_val, val[1]), epochs=args.epochs, batch_size=BATCH_SIZE,
                  callbacks=[timer], verbose=0)
        fits.append({"fit_s": time.perf_counter() - started, "epoch_s": timer.epoch_s})
    emit({"fits": fits, "batch_size": BATCH_SIZE, "epochs": args.epochs, "n_train": len(y_tr)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
