"""TensorBoard HParams logdirs (``review PATH --tensorboard OUT``, ``search``'s ``RUN/tensorboard``), read back
with TensorBoard's own event loader: the experiment's hparams, one session per trial with its exact values
and status, its metric curves step by step; and a user's folder is never written into."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli, search_config
from fashion_tuner import cli, runs
from fashion_tuner.errors import UserError
from fashion_tuner.review import tensorboard as tb
from fashion_tuner.review.project import read_project
from fashion_tuner.search.config import resume_changes

SUCCESS = 1  # tensorboard.plugins.hparams.api_pb2.STATUS_SUCCESS


def read_logdir(out: Path) -> dict:
    """What TensorBoard loads from ``out``: ``{"experiment": {hparam: domain kind}, "metrics": [tags],
    "sessions": {run: {"group", "hparams", "status", "scalars": {tag: [(step, value)]}}}}``."""
    from tensorboard.backend.event_processing import event_multiplexer
    from tensorboard.plugins.hparams import metadata
    from tensorboard.util import tensor_util

    mux = event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(out))
    mux.Reload()
    found = {"experiment": None, "metrics": None, "sessions": {}}
    for run, tags in mux.PluginRunToTagToContent("hparams").items():
        if metadata.EXPERIMENT_TAG in tags:
            exp = metadata.parse_experiment_plugin_data(tags[metadata.EXPERIMENT_TAG])
            found["experiment"] = {h.name: h.WhichOneof("domain") for h in exp.hparam_infos}
            found["metrics"] = [m.name.tag for m in exp.metric_infos]
        if metadata.SESSION_START_INFO_TAG in tags:
            start = metadata.parse_session_start_info_plugin_data(tags[metadata.SESSION_START_INFO_TAG])
            end = metadata.parse_session_end_info_plugin_data(tags[metadata.SESSION_END_INFO_TAG])
            hparams = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
            scalars = {tag: [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in mux.Tensors(run, tag)]
                       for tag in mux.GetAccumulator(run).Tags()["tensors"] if not tag.startswith("_hparams_")}
            found["sessions"][run] = {"group": start.group_name, "hparams": hparams, "status": end.status,
                                      "scalars": scalars}
    return found


def trial_files(run_dir: Path) -> dict[str, dict]:
    return {json.loads(p.read_text())["trial_id"]: json.loads(p.read_text())
            for p in sorted(run_dir.glob("trial_*/trial.json"))}


def check_sessions(logdir: dict, run_dir: Path) -> None:
    """Every completed trial of ``run_dir`` has a session with its exact values and a successful end."""
    trials = trial_files(run_dir)
    assert trials
    for tid, trial in trials.items():
        assert trial["status"] == "COMPLETED"
        session = logdir["sessions"][f"trial_{tid}"]
        assert session["group"] == tid and session["status"] == SUCCESS
        values = {k: v for k, v in trial["hyperparameters"]["values"].items() if v is not None}
        assert {k: v for k, v in session["hparams"].items() if k != tb.STATUS_HPARAM} == pytest.approx(values)
        assert session["hparams"][tb.STATUS_HPARAM] == "completed"
        assert set(values) <= set(logdir["experiment"])
        assert session["scalars"][tb.SCORE_METRIC] == [(trial["best_step"], pytest.approx(trial["score"], rel=1e-6))]


# ----------------------------------------------------------------------------- a fashion_tuner search


@pytest.mark.slow
def test_search_writes_a_logdir_and_review_rewrites_it(tiny_run, data_source, tmp_path, capsys):
    run_args = runs.read_run(tiny_run)["args"]
    assert run_args["tensorboard"] is True  # on by default, recorded in run.json
    # a runtime flag: a resume may turn it off (recorded as a change), it does not make another search
    changes = resume_changes(runs.read_run(tiny_run), search_config(data_source, tiny_run.parent, name="tiny",
                                                                    tensorboard=False), tiny_run)
    assert changes == [{"arg": "tensorboard", "from": True, "to": False}]
    written = read_logdir(tiny_run / runs.TENSORBOARD_DIR)  # by the search itself
    check_sessions(written, tiny_run)

    out = tmp_path / "tb"
    assert cli.main(["review", str(tiny_run), "--tensorboard", str(out)]) == 0  # in process: TF is loaded already
    assert f"tensorboard --logdir {out}" in capsys.readouterr().out
    logdir = read_logdir(out)
    check_sessions(logdir, tiny_run)
    space = read_project(tiny_run).space
    assert logdir["experiment"] == written["experiment"]
    assert set(space) | {tb.STATUS_HPARAM} <= set(logdir["experiment"])
    kinds = {"Int": "domain_interval", "Float": "domain_interval", "Choice": "domain_discrete",
             "Boolean": "domain_discrete"}
    assert all(logdir["experiment"][n] == kinds[hp["type"]] for n, hp in space.items() if hp["type"] in kinds)
    assert {"accuracy", "loss", "val_accuracy", "val_loss", tb.SCORE_METRIC} <= set(logdir["metrics"])
    for tid in trial_files(tiny_run):  # the curves: one point per epoch of epochs.jsonl, step = epoch - 1
        rows = [json.loads(line) for line in (tiny_run / f"trial_{tid}" / "epochs.jsonl").read_text().splitlines()]
        epochs = [r for r in rows if "epoch" in r]
        assert len(epochs) == run_args["max_epochs"]
        for tag in ("accuracy", "val_loss"):
            assert logdir["sessions"][f"trial_{tid}"]["scalars"][tag] == \
                [(r["epoch"] - 1, pytest.approx(r[tag], rel=1e-6)) for r in epochs]


# ----------------------------------------------------------------------------- a plain Keras Tuner script


@pytest.fixture(scope="module")
def plain_project(fashion, tmp_path_factory) -> Path:
    """What a plain Keras Tuner script leaves: RandomSearch, 2 trials, 2 epochs on 300 real images."""
    import keras
    import keras_tuner

    def build(hp):
        model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
                                  keras.layers.Dense(hp.Int("units", 8, 32, step=8), activation="relu"),
                                  keras.layers.Dropout(hp.Float("dropout", 0.0, 0.5)),
                                  keras.layers.Dense(10, activation="softmax")])
        model.compile(keras.optimizers.Adam(hp.Choice("lr", [1e-2, 1e-3])), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    x = fashion.x_train[:500].astype("float32") / 255.0
    y = fashion.y_train[:500]
    directory = tmp_path_factory.mktemp("plain")
    tuner = keras_tuner.RandomSearch(build, objective="val_accuracy", max_trials=2, seed=3,
                                     directory=str(directory), project_name="fashion", overwrite=True)
    tuner.search(x[:300], y[:300], validation_data=(x[300:], y[300:]), epochs=2, batch_size=64, verbose=0)
    return directory / "fashion"


@pytest.mark.slow  # the Keras Tuner search of its fixture: 2.5-14 s on 2 shared cores
def test_plain_keras_tuner_project_becomes_a_logdir(plain_project, tmp_path):
    assert not (plain_project / runs.RUN_JSON).exists()
    out = tmp_path / "tb"
    result = tb.write_logdir(read_project(plain_project), out)
    assert result["sessions"] == 2
    logdir = read_logdir(out)
    assert logdir["experiment"] == {"units": "domain_interval", "dropout": "domain_interval",
                                    "lr": "domain_discrete", tb.STATUS_HPARAM: "domain_discrete"}
    check_sessions(logdir, plain_project)
    for tid, trial in trial_files(plain_project).items():  # the curves: trial.json's observations, step by step
        scalars = logdir["sessions"][f"trial_{tid}"]["scalars"]
        for name, history in trial["metrics"]["metrics"].items():
            expected = [(o["step"], pytest.approx(float(np.mean(o["value"])), rel=1e-6))
                        for o in history["observations"]]
            assert expected and scalars[name] == expected

    # rewriting it replaces what it wrote, and only that: a user's file there is kept, no duplicate events
    (out / "my_notes.txt").write_text("mine")
    tb.write_logdir(read_project(plain_project), out)
    assert (out / "my_notes.txt").read_text() == "mine"
    events = sorted(p.relative_to(out).as_posix() for p in out.rglob(tb.EVENTS_PREFIX + "*"))
    assert len(events) == 3 and {Path(e).parent.as_posix() for e in events} == {".", "trial_0", "trial_1"}
    assert read_logdir(out)["sessions"].keys() == logdir["sessions"].keys()


# ----------------------------------------------------------------------------- refusals (no TensorFlow)


def _hand_project(path: Path) -> Path:
    """The smallest Keras Tuner project: one completed trial as trial.json stores it."""
    (path / "trial_0").mkdir(parents=True)
    (path / "trial_0" / "trial.json").write_text(json.dumps({
        "trial_id": "0", "status": "COMPLETED", "score": 0.5, "best_step": 0,
        "hyperparameters": {"space": [{"class_name": "Int", "config": {"name": "units", "min_value": 8,
                                                                        "max_value": 32, "step": 8}}],
                            "values": {"units": 16}},
        "metrics": {"metrics": {"val_accuracy": {"direction": "max",
                                                 "observations": [{"value": [0.5], "step": 0}]}}}}))
    return path


def test_a_users_folder_is_refused_and_left_alone(tmp_path):
    project = _hand_project(tmp_path / "proj")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    for target in (mine, project):  # a user's folder; the project folder itself
        before = sorted(p.name for p in target.rglob("*"))
        result = run_cli("review", str(project), "--tensorboard", str(target))
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "was not written by this tool" in lines[0] and "Traceback" not in result.stderr
        assert sorted(p.name for p in target.rglob("*")) == before
    assert (mine / "notes.txt").read_text() == "keep me"
    with pytest.raises(UserError, match="is a file"):
        tb.check_out(mine / "notes.txt")


def test_domains_follow_the_declared_space():
    assert tb.domain({"type": "Int", "min": 8, "max": 32}, [16]) == tb.Domain("int", low=8, high=32)
    assert tb.domain({"type": "Float", "min": 0.0, "max": 0.5}, [None]) == tb.Domain("real", low=0.0, high=0.5)
    assert tb.domain({"type": "Choice", "values": [64, 128]}, [64]) == tb.Domain("discrete", values=[64, 128])
    assert tb.domain({"type": "Choice", "values": [1e-3, 1e-2]}, []).values == [1e-3, 1e-2]
    assert tb.domain({"type": "Choice", "values": ["relu", "gelu"]}, []).values == ["gelu", "relu"]
    assert tb.domain({"type": "Boolean", "values": [False, True]}, [True]).values == [False, True]
    assert tb.domain(None, [3, 9]) == tb.Domain("int", low=3, high=9)  # Hyperband's tuner/epochs
    mixed = tb.domain({"type": "Choice", "values": [1, "auto"]}, [])
    assert mixed.as_text and mixed.values == ["1", "auto"]
    assert tb.domain(None, []).kind is None
