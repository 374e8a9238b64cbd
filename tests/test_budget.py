"""--time-budget (fashion_tuner.budget): durations, epoch planning from the search's timings, a search
that keeps to its budget (stopping a trial at an epoch boundary), a retrain sized to its budget."""

import json
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import run_cli, search_config
from fashion_tuner import budget, runs, search

SPACES = Path(__file__).resolve().parent / "spaces"


def test_durations():
    assert budget.parse_duration("90s") == 90 and budget.parse_duration("15m") == 900
    assert budget.parse_duration("1.5h") == 5400 and budget.parse_duration("45") == 45
    for bad in ("", "0s", "-5m", "15 minutes", "1d"):
        with pytest.raises(ValueError, match="90s, 15m or 1h"):
            budget.parse_duration(bad)
    assert budget.describe(900) == "15m00s" and budget.describe(3660) == "1h01m" and budget.describe(42) == "42s"


def test_epochs_are_planned_from_the_search_timings(tiny_run):
    seconds = budget.epoch_seconds(tiny_run)
    assert len(seconds) == 2 and all(s > 0 for s, _ in seconds)  # one epoch per trial of the tiny search
    per_epoch = budget.seconds_per_epoch(tiny_run, 600, 6000)
    median = sorted(s for s, _ in seconds)[len(seconds) // 2]
    assert per_epoch == pytest.approx(10 * median, rel=0.6)  # ten times the images: about ten times the time
    # the trial to be retrained is timed by its own epochs, not by the other trials'
    first, second = sorted(p.name.removeprefix("trial_") for p in tiny_run.glob("trial_*"))
    own = [s for s, _ in budget.epoch_seconds(tiny_run, [second])]
    assert len(own) == 1 and own[0] in [s for s, _ in seconds]
    assert budget.seconds_per_epoch(tiny_run, 600, 1200, [second]) == pytest.approx(2 * own[0])
    every = sum(s for s, _ in seconds) / 2  # no epochs of that trial: the median of all (two) epochs
    assert budget.seconds_per_epoch(tiny_run, 600, 1200, ["no-such-trial"]) == pytest.approx(2 * every)
    assert budget.plan_epochs(100, 10.0, 50) == 9  # 95 % of the budget, whole epochs
    assert budget.plan_epochs(100, 10.0, 5) == 5 and budget.plan_epochs(1, 10.0, 5) == 1
    assert budget.plan_epochs(100, None, 7) == 7


def test_bad_or_too_small_budget_is_one_line(tmp_path, data_args):
    result = run_cli("search", "--time-budget", "soon", "--results-dir", str(tmp_path))
    assert result.returncode == 2 and "--time-budget: expected a duration like 90s" in result.stderr
    # a budget that start-up alone spends: no trial ran, so none "failed" (measured: a 14 s budget under a load of
    # two per core said "every trial failed (0)")
    result = run_cli("search", "--space", "mlp", "--tuner", "random", "--max-trials", "2", "--max-epochs", "1",
                     "--subset", "600", "--results-dir", str(tmp_path), "--time-budget", "1s", *data_args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("error: time budget 1s spent before any trial finished (") and "failed" not in lines[0]
    assert lines[0].endswith("start-up and data loading included): give a larger --time-budget")


@pytest.mark.slow
def test_search_keeps_to_its_budget_and_stops_an_overrunning_trial(tmp_path, data_args):
    budget_s = 20  # start-up counts: 14 s was spent before a first trial under a load of two per core
    started = time.monotonic()
    result = run_cli("search", "--space", "mlp", "--tuner", "random", "--max-trials", "50", "--max-epochs", "200",
                     "--patience", "200", "--subset", "3000", "--results-dir", str(tmp_path), "--name", "budget",
                     "--time-budget", f"{budget_s}s", *data_args)
    wall = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-2000:]
    run_dir = tmp_path / "budget"
    manifest = runs.read_run(run_dir)
    assert manifest["status"] == "stopped" and f"time budget {budget_s}s spent" in manifest["stop_reason"]
    assert "stopped: time budget" in result.stdout
    stops = list(run_dir.glob(f"trial_*/{budget.BUDGET_STOP_FILE}"))
    assert stops, "the first trial (200 epochs) must have been stopped at an epoch boundary"
    epochs = [s for s, _ in budget.epoch_seconds(run_dir)]
    assert wall <= budget_s + max(epochs) + 3.0  # within the budget plus one epoch (+ process exit)
    trials = [json.loads(p.read_text()) for p in run_dir.glob("trial_*/trial.json")]
    assert all(t["status"] == "COMPLETED" for t in trials) and len(trials) < 50
    stopped = json.loads(stops[0].read_text())
    assert 0 < stopped["epochs_done"] < 200


@pytest.mark.slow
def test_hyperband_sweeps_again_until_the_budget_is_spent(data_source, tmp_path, caplog):
    """One Hyperband sweep (5 trials of 1-2 epochs on 600 images) ends in seconds: a 30 s budget runs
    further sweeps instead of stopping there; a rerun without a budget finishes the sweep in progress."""
    cfg = search_config(data_source, tmp_path, tuner="hyperband", max_epochs=2, factor=2, name="sweeps",
                        time_budget=30.0)
    assert search.expected_trials(cfg) == 5 and search.trial_budget(cfg) is None
    caplog.set_level("INFO")
    run_dir = search.run_search(cfg)
    manifest = runs.read_run(run_dir)
    assert manifest["status"] == "stopped" and "time budget 30s spent" in manifest["stop_reason"]
    trials = list(run_dir.glob("trial_*/trial.json"))
    assert len(trials) > search.expected_trials(cfg)  # past the first sweep
    oracle = json.loads((run_dir / "oracle.json").read_text())
    assert oracle["current_iteration"] >= 1 and oracle["hyperband_iterations"] == oracle["current_iteration"] + 1
    assert "sweeps repeat while the time budget lasts" in caplog.text and "budget left" in caplog.text

    search.run_search(search_config(data_source, tmp_path, tuner="hyperband", max_epochs=2, factor=2, name="sweeps"))
    assert runs.read_run(run_dir)["status"] == "finished"
    after = json.loads((run_dir / "oracle.json").read_text())
    assert after["current_iteration"] == oracle["current_iteration"]  # no new sweep began
    assert not after["ongoing_trials"] and after["current_bracket"] == 0  # the sweep ran to its last bracket
    statuses = [json.loads(p.read_text())["status"] for p in run_dir.glob("trial_*/trial.json")]
    assert len(statuses) >= len(trials) and set(statuses) == {"COMPLETED"}


def test_a_budget_that_fits_few_trials_like_the_first_is_too_small_to_search():
    assert budget.small_budget_fits(160.0, 20.0) == 9  # a 3-minute cnn search: trial 0 took ~20 s after start-up
    assert budget.small_budget_fits(0.0, 20.0) == 1 and budget.small_budget_fits(-5.0, 20.0) == 1
    limit = budget.SMALL_BUDGET_TRIALS
    assert budget.small_budget_fits((limit - 2) * 10.0 + 9.9, 10.0) == limit - 1
    assert budget.small_budget_fits((limit - 1) * 10.0, 10.0) is None  # fits the threshold: search
    assert budget.small_budget_fits(870.0, 30.0) is None  # a 15-minute search


@pytest.mark.slow
def test_a_budget_too_small_to_search_stops_after_the_defaults_and_says_so(tmp_path, data_args):
    """A priorband search whose budget fits fewer than SMALL_BUDGET_TRIALS trials like its first ends after that one
    (the space's defaults), finished, and says how much time to give the retrain; --small-budget search searches."""
    argv = ["search", "--space", "mlp", "--max-epochs", "2", "--subset", "600", "--results-dir", str(tmp_path),
            "--name", "small", "--time-budget", "20s"]
    result = run_cli(*argv, *data_args)
    assert result.returncode == 0, result.stderr[-2000:]
    run_dir = tmp_path / "small"
    run = runs.read_run(run_dir)
    assert run["status"] == "finished" and sorted(p.name for p in run_dir.glob("trial_*")) == ["trial_0000"]
    fits = run["small_budget"]["fits_trials"]
    assert 1 <= fits < budget.SMALL_BUDGET_TRIALS and run["small_budget"]["first_trial_s"] > 0
    assert f"fits about {fits} trials like the first" in run["stop_reason"]
    assert "pick: the space's defaults (trial 0000" in result.stdout
    note = next(ln for ln in result.stdout.splitlines() if ln.startswith("note: the search stopped after trial 0000"))
    assert f"retrain-best {run_dir} --time-budget " in note and "--small-budget search searches anyway" in note
    assert "note: the pick is the space's defaults" not in result.stdout  # one note, not two
    # searching anyway: the same run resumes and the rule no longer ends it (the budget does, or the sweep)
    result = run_cli(*argv[:-1], "12s", "--small-budget", "search", *data_args)
    assert result.returncode == 0, result.stderr[-2000:]
    run = runs.read_run(run_dir)
    assert "fits about" not in (run.get("stop_reason") or "") and "small_budget" not in run
    assert [(c["from"], c["to"]) for c in run["changes"] if c["arg"] == "small_budget"] == [("defaults", "search")]


@pytest.mark.slow
def test_a_budgeted_search_that_keeps_the_defaults_says_where_the_minutes_go(tmp_path, data_args):
    """A priorband search under --time-budget over a space whose only other configuration cannot learn: the pick
    is the defaults, and the search says the minutes do more in the retrain, naming the command."""
    result = run_cli("search", "--space", str(SPACES / "frozen_space.py"), "--max-epochs", "1", "--subset", "300",
                     "--results-dir", str(tmp_path), "--name", "kept", "--time-budget", "60s", "--small-budget",
                     "search", *data_args)
    assert result.returncode == 0, result.stderr[-2000:]
    run = runs.read_run(tmp_path / "kept")
    assert run["tuner"] == "priorband" and run["best"]["trial_id"] == "0000"
    # the summary calls it the pick, not the best score, and says why
    assert "picked val_accuracy" in result.stdout and "pick: the space's defaults (trial 0000" in result.stdout
    note = next(ln for ln in result.stdout.splitlines() if "note: the pick is the space's defaults" in ln)
    assert f"retrain-best {tmp_path / 'kept'} --space " in note and "frozen_space.py --time-budget 60s" in note
    assert "benchmarks.md" in note


@pytest.mark.slow
def test_retrain_sizes_its_epochs_to_the_budget(tiny_run, tmp_path):
    run = tmp_path / "tiny"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns(runs.REPORT_DIR))
    result = run_cli("retrain-best", str(run), "--epochs", "200", "--train-on", "full", "--time-budget", "25s")
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((run / "report" / "metrics.json").read_text())
    plan = metrics["time_budget"]
    assert plan["budget_s"] == 25 and 1 <= plan["planned_epochs"] < 200
    assert metrics["epochs_trained"] <= plan["planned_epochs"]
    assert "so %d epoch(s) per model" % plan["planned_epochs"] in result.stdout
    # a plan far under its budget says which flags would use it (the run searched a 600-image subset)
    result = run_cli("retrain-best", str(run), "--epochs", "2", "--time-budget", "10m")
    assert result.returncode == 0, result.stderr[-2000:]
    note = next(ln for ln in result.stdout.splitlines() if "note: this plan uses about" in ln)
    assert "left of the time budget" in note and "--epochs " in note and "--train-on full" in note


def _lr_sum(initial: float, steps: list[int], decay_steps: int, alpha: float) -> float:
    import math

    return sum(initial * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * min(t, decay_steps) / decay_steps)) + alpha)
               for t in steps)


def _sgd_on_one_weight(lr: float, decay_steps: int, alpha: float):
    """SGD on |w - 100| from w = 0 under a cosine schedule, traced once and reset: a fit of one step per epoch on
    ``np.ones((8, 1))`` moves w by exactly the rate of each step. Returns (model, schedule)."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=decay_steps, alpha=alpha)
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mae")
    model.fit(np.ones((8, 1)), np.full((8, 1), 100.0), batch_size=8, epochs=1, verbose=0)  # trace first
    model.optimizer.iterations.assign(0)
    model.layers[0].kernel.assign(np.zeros((1, 1)))
    return model, schedule


def test_a_slow_first_epoch_shortens_the_schedule_the_train_step_uses(monkeypatch):
    """SGD on |w - 100| with one step per epoch moves w by exactly the learning rate of each step, so the
    final weight is the sum of the rates the traced train step used: the shortened cosine's, not the plan's.
    The guard reads a clock that each epoch advances by 0.3 s (a loaded machine cannot change the plan)."""
    import keras
    import numpy as np

    epochs, alpha, lr = 10, 0.01, 0.1
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(budget, "time", SimpleNamespace(time=lambda: clock.now))

    class Slow(keras.callbacks.Callback):  # every epoch takes 0.3 s
        def on_epoch_end(self, epoch, logs=None):
            clock.now += 0.3

    model, schedule = _sgd_on_one_weight(lr, epochs, alpha)
    guard = budget.budget_guard(clock.now + 1.5, replan=True)
    history = model.fit(np.ones((8, 1)), np.full((8, 1), 100.0), batch_size=8, epochs=epochs, verbose=0,
                        callbacks=[Slow(), guard])
    fits = guard.replanned_epochs
    assert fits == 4  # 1 + (1.2 s left x 0.95) // 0.3 s
    assert len(history.history["loss"]) == fits and schedule.decay_steps == fits
    w = float(model.layers[0].kernel.numpy()[0, 0])
    assert w == pytest.approx(_lr_sum(lr, list(range(fits)), fits, alpha), rel=1e-4)
    assert abs(w - _lr_sum(lr, list(range(fits)), epochs, alpha)) > 0.01  # what the unshortened schedule gives


@pytest.mark.parametrize("most, lengthened", [(10, 9), (6, 6)])
def test_a_fast_first_epoch_lengthens_a_plan_that_may_grow(monkeypatch, most, lengthened):
    """The schedule is laid out for 4 epochs of a fit that may train ``most``; every epoch takes 0.3 s of a 3 s
    budget, so after the first 9 fit (1 + (2.7 s x 0.95) // 0.3 s): the cosine is lengthened to min(9, most) and
    the fit trains that many, the first step at the 4-epoch schedule's rate, the rest at the new one's (the
    SGD trick above). Measured at full size: a plan from the search's epochs left a 12.5-minute cnn retrain
    174 s unused (2026-12-07)."""
    import keras
    import numpy as np

    alpha, lr = 0.01, 0.1
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(budget, "time", SimpleNamespace(time=lambda: clock.now))

    class Even(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            clock.now += 0.3

    model, schedule = _sgd_on_one_weight(lr, 4, alpha)
    guard = budget.budget_guard(clock.now + 3.0, replan=True, planned=4)
    history = model.fit(np.ones((8, 1)), np.full((8, 1), 100.0), batch_size=8, epochs=most, verbose=0,
                        callbacks=[Even(), guard])
    assert guard.fits_more and guard.replanned_epochs == lengthened and schedule.decay_steps == lengthened
    assert len(history.history["loss"]) == lengthened and clock.now <= 1003.0
    w = float(model.layers[0].kernel.numpy()[0, 0])
    used = _lr_sum(lr, [0], 4, alpha) + _lr_sum(lr, list(range(1, lengthened)), lengthened, alpha)
    assert w == pytest.approx(used, rel=1e-4)


@pytest.mark.parametrize("planned, trained, left", [(None, 7, 1.7), (12, 12, 0.2)])
def test_a_slow_stretch_early_in_a_plan_that_may_grow_is_given_back(monkeypatch, planned, trained, left):
    """Epochs of 0.3 s but the second and third, 0.6 s, in a 4.4 s budget: the stretch cuts the plan to 7. Without
    ``planned`` (a plan that may not grow) the fit ends there, 1.7 s early (measured at full size: a 28-s, 43-s,
    ~30-s retrain ended 190 s before its 756 s); with it, re-plans in the first half of the first plan (12 of at
    most 14) lengthen it again as the pace recovers, and the fit ends within an epoch of the deadline."""
    import keras
    import numpy as np

    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(budget, "time", SimpleNamespace(time=lambda: clock.now))

    class Stretch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            clock.now += 0.6 if epoch in (1, 2) else 0.3

    model, schedule = _sgd_on_one_weight(0.1, 12, 0.01)
    start = clock.now
    guard = budget.budget_guard(start + 4.4, replan=True, planned=planned)
    history = model.fit(np.ones((8, 1)), np.full((8, 1), 100.0), batch_size=8, epochs=14 if planned else 12,
                        verbose=0, callbacks=[Stretch(), guard])
    assert len(history.history["loss"]) == guard.replanned_epochs == schedule.decay_steps == trained
    assert guard.fits_more is bool(planned) and start + 4.4 - clock.now == pytest.approx(left)


def test_a_plan_that_may_not_grow_stops_where_it_was_laid_out(monkeypatch):
    """The same fast epochs with the plan at the fit's own epochs (no ``planned``): nothing is lengthened, and a
    ``planned`` fit whose epochs take as long as predicted trains exactly its plan."""
    import keras
    import numpy as np

    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(budget, "time", SimpleNamespace(time=lambda: clock.now))

    class Even(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            clock.now += 0.3

    model, schedule = _sgd_on_one_weight(0.1, 4, 0.01)
    history = model.fit(np.ones((8, 1)), np.full((8, 1), 100.0), batch_size=8, epochs=4, verbose=0,
                        callbacks=[Even(), budget.budget_guard(clock.now + 3.0, replan=True)])
    assert len(history.history["loss"]) == 4 and schedule.decay_steps == 4
    model, schedule = _sgd_on_one_weight(0.1, 4, 0.01)
    guard = budget.budget_guard(clock.now + 1.3, replan=True, planned=4)  # 1 + (1.0 s x 0.95) // 0.3 s = 4
    history = model.fit(np.ones((8, 1)), np.full((8, 1), 100.0), batch_size=8, epochs=10, verbose=0,
                        callbacks=[Even(), guard])
    assert not guard.fits_more and len(history.history["loss"]) == 4 and schedule.decay_steps == 4


def test_the_first_replan_leaves_out_the_batch_that_traces(monkeypatch):
    """A fit's first batch traces the train step (seconds on a real model, paid once): the re-plan after the first
    epoch paces the rest by the epoch's later batches, so the schedule is not cut for that cost (measured: a
    cnn_15m_defaults retrain's first epoch took 67 s, its later ones ~58 s, and its plan fell from 10 epochs to 9)."""
    import keras
    import numpy as np

    clock = SimpleNamespace(now=1000.0, first=True)
    monkeypatch.setattr(budget, "time", SimpleNamespace(time=lambda: clock.now))

    class Tracing(keras.callbacks.Callback):  # the first batch takes 2 s, every later one 0.1 s (10 an epoch)
        def on_train_batch_end(self, batch, logs=None):
            clock.now += 2.0 if clock.first else 0.1
            clock.first = False

    model, schedule = _sgd_on_one_weight(0.1, 100, 0.01)
    guard = budget.budget_guard(clock.now + 10.5, replan=True, batch_size=8)
    history = model.fit(np.ones((80, 1)), np.full((80, 1), 100.0), batch_size=8, epochs=10, verbose=0,
                        callbacks=[Tracing(), guard])
    assert guard.replanned_epochs == 8  # 1 + (7.6 s left x 0.95) // 1.0 s; the first epoch's 2.9 s would give 3
    assert len(history.history["loss"]) == 8 and schedule.decay_steps == 80 and clock.now <= 1010.5


def test_a_machine_that_slows_down_mid_fit_shortens_the_schedule_again(monkeypatch):
    """The first epoch takes 0.3 s (9 of 10 epochs fit a 3 s budget), then every epoch 0.5 s: after the second
    the plan falls to 6 and the cosine ends at its floor there. Before, only the first epoch re-planned, so the
    deadline cut the fit at 6 epochs of a 9-epoch schedule, part-way down it. Same SGD trick as above: the
    final weight is the sum of the rates the traced train step used (decay 10, then 9, then 6 steps)."""
    import keras
    import numpy as np

    epochs, alpha, lr = 10, 0.01, 0.1
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(budget, "time", SimpleNamespace(time=lambda: clock.now))

    class Slowing(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            clock.now += 0.3 if epoch == 0 else 0.5

    model, schedule = _sgd_on_one_weight(lr, epochs, alpha)
    start = clock.now
    guard = budget.budget_guard(start + 3.0, replan=True)
    history = model.fit(np.ones((8, 1)), np.full((8, 1), 100.0), batch_size=8, epochs=epochs, verbose=0,
                        callbacks=[Slowing(), guard])
    assert guard.replanned_epochs == 6 and schedule.decay_steps == 6  # 2 + (2.2 s x 0.95) // 0.5 s
    assert len(history.history["loss"]) == 6 and clock.now <= start + 3.0
    w = float(model.layers[0].kernel.numpy()[0, 0])
    used = _lr_sum(lr, [0], 10, alpha) + _lr_sum(lr, [1], 9, alpha) + _lr_sum(lr, [2, 3, 4, 5], 6, alpha)
    assert w == pytest.approx(used, rel=1e-4)
    first_only = _lr_sum(lr, [0], 10, alpha) + _lr_sum(lr, [1, 2, 3, 4, 5], 9, alpha)  # the old re-plan's rates
    assert abs(w - first_only) > 0.01
    final_rate = float(schedule(5))  # the last step's rate: near the floor, not a third of the way down
    assert final_rate < 0.1 * lr


def test_a_machine_that_slows_down_is_stopped_inside_the_epoch_before_the_deadline(monkeypatch, tmp_path):
    """Fake clock: epoch 1's 10 batches take 0.1 s each and its validation 0.2 s (ends at 1.2 s, and 1.2 + 1.2 s
    fits the 2.5 s budget); then the machine slows to 0.2 s a batch. At the epoch boundary the guard cannot
    know; inside epoch 2 it stops after the 5th batch, so validation ends at 2.4 s, not at 3.4 s."""
    import keras
    import numpy as np

    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(budget, "time", SimpleNamespace(time=lambda: clock.now))
    start = clock.now

    class Load(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            clock.now += 0.1 if self.epoch == 0 else 0.2

        def on_test_end(self, logs=None):
            clock.now += 0.2

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    guard = budget.budget_guard(start + 2.5, marker_dir=tmp_path)
    x = np.ones((80, 1))
    history = model.fit(x, x, batch_size=8, epochs=5, validation_data=(x[:8], x[:8]), verbose=0,
                        callbacks=[Load(), guard])
    assert guard.stopped_inside_epoch and len(history.history["val_loss"]) == 2
    assert clock.now - start == pytest.approx(2.4)  # 1.2 + 5 x 0.2 + 0.2: within the budget
    marker = json.loads((tmp_path / budget.BUDGET_STOP_FILE).read_text())
    assert marker["epochs_done"] == 2 and marker["last_epoch_partial"] is True


def test_a_lengthened_plan_cut_by_the_deadline_is_recorded_as_stopped_by_the_budget(monkeypatch):
    """Planned 2 of at most 10 epochs in 8 s; epochs of 10 batches at 0.1 s plus 0.2 s of validation, so after
    the first 6 fit (1 + (6.8 s x 0.95) // 1.2 s) and the plan grows to 6. In epoch 4 the machine slows to 1 s a
    batch and the guard cuts the fit inside it: 4 epochs, more than the first plan but short of the schedule's 6.
    The record says the budget stopped it (it compared the epochs with the first plan: not stopped), and a
    fit that runs its plan out reads as not stopped."""
    import keras
    import numpy as np

    from fashion_tuner.retrain.job import RetrainJob

    def fit(slow_from: int):
        clock = SimpleNamespace(now=1000.0)
        monkeypatch.setattr(budget, "time", SimpleNamespace(time=lambda: clock.now))

        class Load(keras.callbacks.Callback):
            epoch = 0

            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch

            def on_train_batch_end(self, batch, logs=None):
                clock.now += 1.0 if self.epoch >= slow_from else 0.1

            def on_test_end(self, logs=None):
                clock.now += 0.2

        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        guard = budget.budget_guard(clock.now + 8.0, replan=True, batch_size=8, validation_images=8, planned=2)
        x = np.ones((80, 1))
        history = model.fit(x, x, batch_size=8, epochs=10, validation_data=(x[:8], x[:8]), verbose=0,
                            callbacks=[Load(), guard])
        return guard, {k: [float(v) for v in vals] for k, vals in history.history.items()}

    job = RetrainJob(space=None, run={}, data={}, out=Path("."), max_epochs=10, explicit_epochs=None,
                     train_on="full", seed=0, patience=5, test_idx=np.arange(0),
                     budget={"budget_s": 8, "planned_epochs": 2, "models": 1})
    guard, history = fit(slow_from=3)
    assert guard.fits_more and guard.stopped_inside_epoch and len(history["loss"]) == 4
    record = job.budget_record(history, guard.record())["time_budget"]
    assert record == {"budget_s": 8, "planned_epochs": 2, "models": 1, "epochs_trained": 4, "replanned_epochs": 6,
                      "stopped_by_budget": True}
    guard, history = fit(slow_from=99)  # never slows: the lengthened schedule runs out
    record = job.budget_record(history, guard.record())["time_budget"]
    assert record["epochs_trained"] == record["replanned_epochs"] == 6 and record["stopped_by_budget"] is False
    assert job.budget_record(history, None)["time_budget"]["stopped_by_budget"] is False  # no guard: no stop


def _fake_clock_fit(monkeypatch, guard_for, batch_s=0.2, validation_s=0.5, epochs=5, first_batch_s=None):
    """Fit a tiny model under a fake clock: 10 batches of 8 images an epoch, each ``batch_s`` (the fit's first
    ``first_batch_s`` when given: tracing), validation on 40 images taking ``validation_s``. ``guard_for(start)``
    makes the guard. Returns (guard, epochs logged, seconds)."""
    import keras
    import numpy as np

    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(budget, "time", SimpleNamespace(time=lambda: clock.now))
    start = clock.now

    class Clock(keras.callbacks.Callback):
        first = True

        def on_train_batch_end(self, batch, logs=None):
            clock.now += first_batch_s if self.first and first_batch_s is not None else batch_s
            self.first = False

        def on_test_end(self, logs=None):
            clock.now += validation_s

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    guard = guard_for(start)
    x = np.ones((80, 1))
    history = model.fit(x, x, batch_size=8, epochs=epochs, validation_data=(x[:40], x[:40]), verbose=0,
                        callbacks=[Clock(), guard])
    return guard, len(history.history["val_loss"]), clock.now - start


def test_the_first_validation_pass_is_estimated_from_the_batch_time(monkeypatch):
    """A 2.2 s budget; 0.2 s batches of 8 images, so 40 validation images are estimated at 0.5 x 0.025 s x 40 =
    0.5 s before any validation ran: the guard stops after batch 8 and the fit ends at 2.1 s. Without the batch
    size it cannot estimate and the first validation overruns (2.5 s)."""
    guard, epochs, took = _fake_clock_fit(
        monkeypatch, lambda start: budget.budget_guard(start + 2.2, batch_size=8, validation_images=40))
    assert guard.stopped_inside_epoch and epochs == 1 and took == pytest.approx(2.1)
    guard, epochs, took = _fake_clock_fit(monkeypatch, lambda start: budget.budget_guard(start + 2.2))
    assert took == pytest.approx(2.5)  # the old behaviour: the validation pass was not counted before it ran


def test_a_retrain_deadline_leaves_the_scoring_and_report_time_at_the_measured_pace(monkeypatch):
    """The plan expected 0.0125 s per training image; the machine runs at 0.025 (0.2 s for a batch of 8: twice
    slower). After the fit come 16 test images (0.5 x 0.025 x 16 = 0.2 s) and 1 s of report at the expected
    pace, 2 s at this one: the fit must end by 5 - 2.2 = 2.8 s. An epoch (2 s + 0.5 s validation) fits once;
    a bare deadline (5.05 s) would have run a second epoch, to 5.0 s, leaving nothing for the report."""
    deadline = lambda start: budget.Deadline(start + 5.0, after_images=16, after_s=1.0, image_s=0.0125)  # noqa: E731
    assert deadline(0).fits_end() == pytest.approx(5.0 - 0.5 * 0.0125 * 16 - 1.0)  # before any batch: as planned
    assert deadline(0).fits_end(0.025) == pytest.approx(2.8)
    assert deadline(0).fits_end(0.005) == pytest.approx(5.0 - 0.04 - 1.0)  # faster than planned: no less reserve
    guard, epochs, took = _fake_clock_fit(
        monkeypatch, lambda start: budget.budget_guard(deadline(start), batch_size=8, validation_images=40))
    assert epochs == 1 and took == pytest.approx(2.5) and took + 2.2 <= 5.0
    guard, epochs, took = _fake_clock_fit(
        monkeypatch, lambda start: budget.budget_guard(start + 5.05, batch_size=8, validation_images=40))
    assert epochs == 2 and took == pytest.approx(5.0)


def test_the_first_batchs_tracing_is_not_taken_for_the_pace(monkeypatch):
    """The fit's first batch takes 3 s (tracing the train step), the rest 0.2 s, as planned (0.025 s an image).
    Taken for the pace, 3 s a batch would make the reserve for scoring and the report 15x longer and stop the fit
    after one batch (what a loaded 3-minute cnn retrain did); the guard measures the pace from later batches."""
    deadline = lambda start: budget.Deadline(start + 20.0, after_images=16, after_s=1.0, image_s=0.025)  # noqa: E731
    guard, epochs, took = _fake_clock_fit(
        monkeypatch, lambda start: budget.budget_guard(deadline(start), batch_size=8, validation_images=40),
        first_batch_s=3.0)
    assert not guard.stopped_inside_epoch and guard._image_s() == pytest.approx(0.025)
    assert epochs == 5 and took == pytest.approx(3.0 + 1.8 + 0.5 + 4 * 2.5)  # all 5 epochs fit the 18.8 s it has


def test_no_replan_when_the_plan_fits_or_without_a_schedule():
    import keras
    import numpy as np

    for optimizer in (keras.optimizers.SGD(keras.optimizers.schedules.CosineDecay(0.1, 4)), keras.optimizers.SGD(0.1)):
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        model.compile(optimizer=optimizer, loss="mse")
        guard = budget.budget_guard(time.time() + 60, replan=True)
        history = model.fit(np.ones((8, 1)), np.ones((8, 1)), epochs=4, verbose=0, callbacks=[guard])
        assert guard.replanned_epochs is None and len(history.history["loss"]) == 4
    assert budget.resize_schedule(model, 2) is False  # a constant rate: nothing to shorten
    long = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    long.compile(optimizer=keras.optimizers.SGD(keras.optimizers.schedules.CosineDecay(0.1, 10)), loss="mse")
    assert budget.resize_schedule(long, 12) is False  # already ends by then
    assert budget.resize_schedule(long, 6) is True and long.optimizer._learning_rate.decay_steps == 6
    assert budget.resize_schedule(long, 4, longer=True) is False  # longer: only ever lengthens
    assert budget.resize_schedule(long, 9, longer=True) is True and long.optimizer._learning_rate.decay_steps == 9


def test_a_retrain_plan_says_when_too_short_or_far_under_its_budget():
    # 180 s for 30 epochs of ~151 s: 1 epoch fits, too few to be worth it; what budget would allow 3
    too_short = budget.plan_advice(170, 151.0, 1, 30, spent_s=10)
    assert len(too_short) == 1 and "1 epoch(s) per model is too few" in too_short[0]
    assert "about 8m07s would allow 3" in too_short[0]  # 10 s spent + 3 x 151 s / 0.95
    # 12 min for 2 epochs of ~10 s (a 2-epoch search): 20 s used, which flags would use the rest
    unused = budget.plan_advice(720, 10.0, 2, 2, subset=True)
    assert len(unused) == 1 and "about 20s of the 12m00s left of the time budget" in unused[0]
    assert "--epochs 68" in unused[0] and "--train-on full" in unused[0]
    assert "--train-on" not in budget.plan_advice(720, 10.0, 2, 2)[0]
    assert budget.plan_advice(600, 10.0, 30, 30) == []  # 300 s of 600 s: used well enough
    assert budget.plan_advice(600, None, 30, 30) == [] and budget.plan_advice(600, 60.0, 9, 30, models=1) == []


def test_a_trial_whose_epochs_would_overrun_is_not_started(tmp_path):
    """With 10 s epochs logged so far and 35 s left, a 2-epoch trial starts and a continuation that trains 4 more
    epochs (6 from 2) does not: the search stops there (TimeBudgetSpent) and the trial stays pending."""
    from fashion_tuner.search import tuner as tuner_module

    trial_dir = tmp_path / "trial_0000"
    trial_dir.mkdir()
    rows = [{"event": "begin", "time": 100.0}] + [{"epoch": e, "time": 100.0 + 10 * e} for e in (1, 2, 3)]
    (trial_dir / "epochs.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ended = []  # the refused trial also ends the sweeps in oracle.json (as a stop before creating a trial does)
    fake = SimpleNamespace(_deadline=time.time() + 35, project_dir=str(tmp_path), _end_sweeps=lambda: ended.append(1))

    def trial(epochs, initial):
        return SimpleNamespace(trial_id="0003", hyperparameters=SimpleNamespace(
            values={"tuner/epochs": epochs, "tuner/initial_epoch": initial}))

    check = tuner_module.tuner_class()._check_trial_fits
    check(fake, trial(2, 0))  # 20 s: fits
    assert not ended
    with pytest.raises(tuner_module.TimeBudgetSpent):
        check(fake, trial(6, 2))  # 40 s: would not
    assert ended == [1]
    check(SimpleNamespace(_deadline=None, project_dir=str(tmp_path)), trial(60, 0))  # no budget: anything goes
