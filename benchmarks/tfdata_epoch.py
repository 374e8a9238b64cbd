"""Seconds per epoch: tf.data input pipeline against plain in-memory arrays.

Two workloads, the ones the issue names: the default MLP of ``search_spaces/mlp.py`` on the
60,000 training images, and a small CNN (2 conv blocks) on 10,000. Each (workload, pipeline)
pair fits ``--epochs`` epochs in a fresh Keras session; the first epoch includes tracing and
dataset construction, so the figure reported is the median of the later epochs.
Prints one JSON line.

    .venv/bin/python benchmarks/tfdata_epoch.py [--epochs 3] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BATCH = 128
SEED = 0


def small_cnn():
    import keras

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    for filters in (32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax", dtype="float32")(x)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def default_mlp():
    import keras_tuner as kt

    from search_spaces import mlp

    return mlp.build_model(kt.HyperParameters())


def time_fit(build, x, y, pipeline: str, epochs: int) -> dict:
    import keras

    from fashion_tuner import devices

    keras.backend.clear_session()
    keras.utils.set_random_seed(SEED)
    model = build()
    stamps = [time.perf_counter()]

    class Clock(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            stamps.append(time.perf_counter())

    if pipeline == "tfdata":
        data = devices.make_dataset(x, y, BATCH, shuffle=True, seed=SEED)
        model.fit(data, epochs=epochs, verbose=0, callbacks=[Clock()])
    else:
        model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0, callbacks=[Clock()])
    per_epoch = [b - a for a, b in zip(stamps, stamps[1:])]
    return {"first_epoch_s": round(per_epoch[0], 3),
            "s_per_epoch": round(statistics.median(per_epoch[1:] or per_epoch), 3),
            "epochs_s": [round(s, 3) for s in per_epoch]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    from fashion_tuner import data as data_mod
    from fashion_tuner import runs

    ds = data_mod.load_dataset("fashion_mnist", args.data_dir)
    x_all, y_all = runs.to_model_input(ds.x_train), ds.y_train.astype("int64")
    workloads = {"mlp_60k": (default_mlp, x_all, y_all), "cnn_10k": (small_cnn, x_all[:10000], y_all[:10000])}
    out = {"benchmark": "tfdata_epoch", "batch_size": BATCH, "epochs": args.epochs, "cpu_count": os.cpu_count()}
    for name, (build, x, y) in workloads.items():
        results = {p: time_fit(build, x, y, p, args.epochs) for p in ("arrays", "tfdata")}
        out[name] = results
        out[f"{name}_tfdata_over_arrays"] = round(results["tfdata"]["s_per_epoch"] / results["arrays"]["s_per_epoch"], 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
