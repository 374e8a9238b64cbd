"""Ablations of training tricks on the cnn space's defaults: validation accuracy and fit time per change.

    python -m benchmarks.ablation --seed 42 [--epochs 10] [--subset 10000] [--variants baseline erasing ...]

For each variant, one fresh model: the cnn defaults (``search_spaces/cnn.py``, the model trial 0
and ``retrain-best`` of a default search train) with one change, trained from the same seed for
``--epochs`` epochs (cosine schedule laid out over them) on the training part of the same
stratified split ``main.py search --subset N --seed S`` makes, then scored on its validation
images (6,000 from the official test set; the held-out test images are never read). Every
variant is also scored with flip test-time augmentation (``fashion_tuner.tta``, what
``retrain-best --tta flip`` does: the mean softmax of each image and its mirror), so TTA is
measured on every model at the cost of one more predict pass.

Variants (``VARIANTS``): ``baseline``; ``erasing`` (random erasing, ``keras.layers.RandomErasing``
on each training batch with probability ``ERASING_P``, patches filled with black);
``label_smoothing`` (0.1); ``ema`` (Keras' optimizer EMA of the weights, momentum ``EMA_MOMENTUM``,
the averaged weights kept at the end); ``residual`` (shortcuts around every block);
``batch_128`` (batches of 128 instead of 64); ``narrow`` (16/32/64 filters instead of 32/64/128);
``sgd`` (Nesterov SGD, the space's default rate 0.05 and weight decay 5e-4, instead of Adam). Prints one JSON line: ``{"variants": {name:
{"val_accuracy", "val_accuracy_tta", "fit_s", "epoch_s", "tta_extra_s", "params"}}, ...}``.
"""

from __future__ import annotations

import argparse
import statistics
import time

from benchmarks.common import SEED, emit, load_split_data

EPOCHS = 10
SUBSET = 10_000
ERASING_P = 0.5
EMA_MOMENTUM = 0.99
SMOOTHING = 0.1
PAYS_TIME_RATIO = 1.15  # a change "pays" when it gains at every seed for at most 15 % more fit time
# name: (hyperparameter values fixed before the defaults are read, harness-level changes)
VARIANTS = {
    "baseline": ({}, {}),
    "erasing": ({}, {"erasing": ERASING_P}),
    "label_smoothing": ({"label_smoothing": SMOOTHING}, {}),
    "ema": ({}, {"ema": EMA_MOMENTUM}),
    "residual": ({"residual": True}, {}),
    "batch_128": ({"batch_size": 128}, {}),
    "narrow": ({"filters_base": 16}, {}),
    "sgd": ({"optimizer": "sgd"}, {}),
}


def erasing_batches(x, y, batch_size: int, probability: float, seed: int):
    """A shuffled ``tf.data`` pipeline of ``(images, labels)`` batches with random erasing applied.

    ``x``: (N, 28, 28, 1) float32 pixels 0..255, ``y``: (N,) integer labels. Each image is erased
    with probability ``probability`` (a patch set to 0, the black background).
    """
    import keras
    import numpy as np
    import tensorflow as tf

    layer = keras.layers.RandomErasing(factor=(probability, probability), fill_value=0.0,
                                       value_range=(0, 255), seed=seed)
    ds = (tf.data.Dataset.from_tensor_slices((np.asarray(x, "float32"), np.asarray(y)))
          .shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(batch_size))
    return ds.map(lambda images, labels: (layer(images, training=True), labels),
                  num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def with_ema(model, momentum: float):
    """Recompile ``model`` with a copy of its optimizer that keeps an EMA of the weights."""
    optimizer = model.optimizer
    config = optimizer.get_config()
    config.update(use_ema=True, ema_momentum=momentum)
    model.compile(optimizer=type(optimizer).from_config(config), loss=model.loss, metrics=["accuracy"])
    return model


def run_variant(name: str, data: dict, epochs: int, seed: int) -> dict:
    """Train and score one variant; the figures of one row of the JSON line."""
    import keras
    import keras_tuner
    import numpy as np

    from benchmarks.space_timed_mlp import EpochTimer
    from fashion_tuner import tta
    from search_spaces import cnn

    fixed, harness = VARIANTS[name]
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    hp = keras_tuner.HyperParameters()
    for key, value in fixed.items():
        hp.Fixed(key, value)
    model = cnn.build_model(hp)
    if "ema" in harness:
        model = with_ema(model, harness["ema"])
    batch_size = hp.get("batch_size")
    x, y = data["x_tr"], data["y_tr"]
    if "erasing" in harness:
        x, y = erasing_batches(x, y, batch_size, harness["erasing"], seed), None
    timer = EpochTimer()
    started = time.perf_counter()
    batches = {"shuffle": False} if y is None else {"batch_size": batch_size}  # a dataset shuffles itself
    cnn.fit(hp, model, x, y, epochs=epochs, callbacks=[timer], verbose=0, **batches)
    fit_s = time.perf_counter() - started
    x_val, y_val = data["x_val"], data["y_val"]
    t0 = time.perf_counter()
    plain = tta.predict(model, x_val)
    plain_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    both = tta.predict(model, x_val, "flip")
    tta_s = time.perf_counter() - t0
    return {"val_accuracy": float(np.mean(plain.argmax(1) == y_val)),
            "val_accuracy_tta": float(np.mean(both.argmax(1) == y_val)),
            "fit_s": round(fit_s, 2), "epoch_s": round(statistics.median(timer.epoch_s[1:] or timer.epoch_s), 3),
            "tta_extra_s": round(tta_s - plain_s, 3), "params": int(model.count_params()),
            "hyperparameters": dict(fixed), "harness": dict(harness)}


def summarize(runs: list[dict]) -> dict:
    """Per variant over seeds (``runs``: the JSON lines of one invocation per seed, each with baseline).

    Accuracy differences are paired (same seed, split and initialisation as the baseline), in
    percentage points: ``gain_pp`` (mean, min, max over seeds), ``tta_gain_pp`` (flip TTA against the
    same model's plain score), ``time_ratio`` (median of fit seconds / the baseline's), and
    ``verdict``: "pays" when the gain is positive at every seed and the fit costs at most
    ``PAYS_TIME_RATIO`` x the baseline's, "no gain" when the mean gain is <= 0, else "mixed".
    """
    names = [n for n in VARIANTS if all(n in r["variants"] for r in runs)]
    out = {}
    for name in names:
        rows = [(r["variants"][name], r["variants"]["baseline"]) for r in runs]
        gains = [100 * (v["val_accuracy"] - b["val_accuracy"]) for v, b in rows]
        tta = [100 * (v["val_accuracy_tta"] - v["val_accuracy"]) for v, _ in rows]
        ratio = statistics.median(v["fit_s"] / b["fit_s"] for v, b in rows)
        verdict = ("pays" if min(gains) > 0 and ratio <= PAYS_TIME_RATIO
                   else "no gain" if statistics.mean(gains) <= 0 else "mixed")
        out[name] = {"val_accuracy": [round(v["val_accuracy"], 4) for v, _ in rows],
                     "mean_val_accuracy": round(statistics.mean(v["val_accuracy"] for v, _ in rows), 4),
                     "gain_pp": _stats(gains), "tta_gain_pp": _stats(tta), "time_ratio": round(ratio, 3),
                     "params": rows[0][0]["params"], "verdict": "baseline" if name == "baseline" else verdict}
    return out


def _stats(values: list[float]) -> dict:
    return {"mean": round(statistics.mean(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--subset", type=int, default=SUBSET)
    parser.add_argument("--val-size", type=float, default=None)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--skip-md5", action="store_true")
    args = parser.parse_args(argv)

    dataset, (x_tr, y_tr), (x_val, y_val), _ = load_split_data(args.subset, args.seed, args.data_dir,
                                                               args.skip_md5, val_size=args.val_size)
    from fashion_tuner import runs, spaces

    x_tr = runs.to_model_input(x_tr)
    spaces.set_data_context(spaces.DataContext.from_data(dataset, x_tr, "results", args.seed, max_epochs=args.epochs))
    data = {"x_tr": x_tr, "y_tr": y_tr, "x_val": runs.to_model_input(x_val), "y_val": y_val}
    variants = {name: run_variant(name, data, args.epochs, args.seed) for name in args.variants}
    emit({"seed": args.seed, "epochs": args.epochs, "n_train": int(len(y_tr)), "n_val": int(len(y_val)),
          "variants": variants})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
