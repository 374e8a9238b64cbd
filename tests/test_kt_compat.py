"""Keras Tuner internals we rely on (fashion_tuner.kt_compat), pinned to the installed version:
these fail loudly, naming the internal, when an upgrade of Keras Tuner moves one."""

import inspect
import json

import keras_tuner
import pytest

from fashion_tuner import kt_compat


def test_the_installed_keras_tuner_is_the_one_the_internals_were_read_from():
    assert keras_tuner.__version__ == kt_compat.KERAS_TUNER_VERSION, (
        f"keras-tuner {keras_tuner.__version__} is installed; fashion_tuner/kt_compat.py was written against "
        f"{kt_compat.KERAS_TUNER_VERSION}: re-read each internal its docstring lists, then update the pin")


def test_private_oracle_api_is_where_we_use_it():
    oracle = keras_tuner.oracles.RandomSearchOracle(objective="val_accuracy", max_trials=2)
    for name in ("_random_values", "_duplicate", "_retry_queue", "ongoing_trials", "trials"):
        assert hasattr(oracle, name), f"Oracle.{name} moved"
    state = oracle.get_state()
    assert {"ongoing_trials", "retry_queue"} <= set(state), "oracle.json no longer holds the unfinished trials"
    from keras_tuner.src.engine import oracle as oracle_module

    assert "consecutive failures" in inspect.getsource(oracle_module), "the too-many-failures text changed"
    from keras_tuner.src import config, utils
    from keras_tuner.src.engine import base_tuner, conditions

    assert hasattr(config, "DEBUG") and callable(utils.save_json) and callable(conditions.Parent.to_proto)
    assert base_tuner.BaseTuner.get_state(None) == {}, "tuner<ID>.json now holds state: do not rewrite it as {}"


def test_defaults_first_makes_the_first_trial_the_defaults():
    hp = keras_tuner.HyperParameters()
    hp.Int("units", 8, 512, default=64)
    hp.Choice("act", ["relu", "tanh"], default="tanh")
    oracle = keras_tuner.oracles.RandomSearchOracle(objective="val_accuracy", max_trials=3, seed=1,
                                                    hyperparameters=hp)
    kt_compat.defaults_first(oracle)
    assert oracle._random_values() == {"units": 64, "act": "tanh"}  # what create_trial draws the first trial with


def test_atomic_json_is_what_keras_tuner_writes_with(tmp_path):
    from keras_tuner.src import utils

    kt_compat.install_atomic_json()
    trial = keras_tuner.engine.trial.Trial(keras_tuner.HyperParameters(), trial_id="7")
    trial.save(str(tmp_path / "trial.json"))  # Keras Tuner's own save path goes through utils.save_json
    assert json.loads((tmp_path / "trial.json").read_text())["trial_id"] == "7"
    assert getattr(utils.save_json, "_atomic", False)


@pytest.mark.parametrize("text, ok", [("[1]", False), ("{", False), ('{"ongoing_trials": {}}', True)])
def test_check_project_reads_the_oracle_first(tmp_path, text, ok):
    (tmp_path / "oracle.json").write_text(text)
    if ok:
        assert kt_compat.check_project(tmp_path) == []
    else:
        with pytest.raises(Exception, match="oracle.json is damaged"):
            kt_compat.check_project(tmp_path)
