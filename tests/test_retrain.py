"""fashion_tuner.retrain: retrain-best on a real tiny run, top-K ensembles, distillation, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import run_cli, tree_snapshot
from fashion_tuner import report, retrain, runs, splits
from fashion_tuner.errors import UserError
from fashion_tuner.runs import ranked_trials, read_trials
from fashion_tuner.retrain import (DISTILL_ALPHA, DISTILL_TEMPERATURE, distill_targets,
                                   distillation_loss, retrain_best, soften, trial_epochs)

MODEL_FILES = ["best_model.keras", "class_names.json", "history.csv", "hyperparameters.json", "learning_curves.png",
               "confusion_matrix.png", "classification_report.txt", "classification_report.csv", "misclassified.png",
               "per_class_accuracy.png", "metrics.json", "test_probabilities.npy"]
PNGS = ["learning_curves.png", "confusion_matrix.png", "misclassified.png", "per_class_accuracy.png"]


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(runs.REPORT_DIR))
    return dst


def tuner_files(run_dir: Path) -> dict:
    return {k: v for k, v in tree_snapshot(run_dir).items() if not k.startswith(runs.REPORT_DIR)}


@pytest.fixture(scope="module")
def ensemble_run(tiny_run, tmp_path_factory) -> dict:
    """A copy of the tiny run retrained with --top-k 2 (2 epochs). Tests must not modify it."""
    run_dir = copy_run(tiny_run, tmp_path_factory.mktemp("ens") / "tiny")
    before = tuner_files(run_dir)
    out = retrain_best(str(run_dir), top_k=2, epochs=2, seed=0)
    return {"run_dir": run_dir, "report": out, "before": before,
            "metrics": json.loads((out / "metrics.json").read_text())}


def check_model_folder(folder: Path) -> dict:
    for name in MODEL_FILES:
        assert (folder / name).is_file(), f"{folder / name} missing"
    for name in PNGS:
        with Image.open(folder / name) as img:
            img.load()
            assert min(img.size) > 100
    table = pd.read_csv(folder / "classification_report.csv")
    assert list(table.columns) == ["class", "precision", "recall", "f1-score", "support"]
    assert len(table) == 12 and table["class"].iloc[9] == "Ankle boot"
    assert list(table["class"].iloc[10:]) == ["macro avg", "weighted avg"]
    m = json.loads((folder / "metrics.json").read_text())
    cm = np.asarray(m["confusion_matrix"])
    assert m["test_accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    lo, hi = m["test_accuracy_ci95"]
    assert lo <= m["test_accuracy"] <= hi
    assert len(m["most_confused"]) == 3
    assert m["n_test"] == cm.sum() == int(table["support"].iloc[:10].sum())
    probs = np.load(folder / "test_probabilities.npy")
    assert probs.shape == (m["n_test"], 10)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)
    history = pd.read_csv(folder / "history.csv")
    assert len(history) == m["epochs_trained"] and {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history)
    return m


def test_every_report_file_exists_and_is_valid(ensemble_run):
    out = ensemble_run["report"]
    members = [check_model_folder(out / f"model_{i}") for i in (1, 2)]
    for name in ["confusion_matrix.png", "misclassified.png", "per_class_accuracy.png", "classification_report.csv",
                 "classification_report.txt", "test_probabilities.npy", "report.html", "report.md", "metrics.json"]:
        assert (out / name).is_file(), name
    m = ensemble_run["metrics"]
    assert set(m) >= {"ensemble", "members", "class_names"}
    assert [x["trial_id"] for x in m["members"]] == [x["trial_id"] for x in members]
    for key in ("test_accuracy", "test_accuracy_ci95", "macro_f1", "test_loss", "n_test", "epochs_trained",
                "wall_s", "hyperparameters", "most_confused"):
        assert key in m["members"][0], key
    assert 1 <= m["members"][0]["epochs_trained"] <= 2


def test_members_are_the_best_trials_in_order(ensemble_run):
    trials = ranked_trials(read_trials(ensemble_run["run_dir"]))
    m = ensemble_run["metrics"]
    assert [x["trial_id"] for x in m["members"]] == [t["trial_id"] for t in trials[:2]]
    hp = json.loads((ensemble_run["report"] / "model_1" / "hyperparameters.json").read_text())
    assert hp == trials[0]["hyperparameters"]["values"]


def test_evaluated_on_exactly_the_saved_test_split(ensemble_run):
    run_dir = ensemble_run["run_dir"]
    split = splits.load_split(run_dir / runs.SPLIT_FILE)
    _, _, _, _, (_, y_te) = runs.load_run_data(runs.read_run(run_dir))
    top = ensemble_run["metrics"]
    for m in [top, top["ensemble"], *top["members"]]:
        assert m["test_indices_sha256"] == report.array_sha256(np.asarray(split.test_idx, dtype=np.int64))
        assert m["test_labels_sha256"] == report.array_sha256(np.asarray(y_te, dtype=np.int64))
    for m in [top["ensemble"], *top["members"]]:
        assert m["n_test"] == split.test_idx.size == y_te.size


def test_ensemble_is_the_average_of_member_probabilities(ensemble_run):
    out, m = ensemble_run["report"], ensemble_run["metrics"]
    run_dir = ensemble_run["run_dir"]
    _, _, _, _, (_, y_te) = runs.load_run_data(runs.read_run(run_dir))
    avg = np.mean([np.load(out / f"model_{i}" / "test_probabilities.npy").astype(np.float64) for i in (1, 2)], axis=0)
    assert m["ensemble"]["test_accuracy"] == pytest.approx((avg.argmax(1) == y_te).mean())
    np.testing.assert_allclose(np.load(out / "test_probabilities.npy"), avg, atol=1e-6)
    for i, member in enumerate(m["members"], start=1):
        probs = np.load(out / f"model_{i}" / "test_probabilities.npy")
        assert member["test_accuracy"] == pytest.approx((probs.argmax(1) == y_te).mean())


def test_saved_model_reproduces_the_report_and_predict_agrees(ensemble_run, tmp_path):
    import keras

    from fashion_tuner.predict import predict_images

    folder = ensemble_run["report"] / "model_1"
    _, _, _, _, (x_te, _) = runs.load_run_data(runs.read_run(ensemble_run["run_dir"]))
    model = keras.models.load_model(folder / "best_model.keras", safe_mode=True)
    probs = model.predict(x_te, verbose=0)
    np.testing.assert_allclose(probs, np.load(folder / "test_probabilities.npy"), atol=1e-4)
    paths = []
    for i in range(3):
        Image.fromarray(x_te[i, ..., 0].astype(np.uint8)).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    results, _ = predict_images(folder / "best_model.keras", paths, top=3)
    assert [r["top"][0][1] for r in results] == list(probs[:3].argmax(1))
    assert results[0]["top"][0][0] in json.loads((folder / "class_names.json").read_text())


def test_tuner_files_are_untouched(ensemble_run):
    assert tuner_files(ensemble_run["run_dir"]) == ensemble_run["before"]
    assert not list(ensemble_run["run_dir"].glob(".report.*"))


def test_html_report_has_every_part(ensemble_run):
    page = (ensemble_run["report"] / "report.html").read_text()
    assert page.count("<img src='data:image/png;base64,") == 3 + 2 * 4  # ensemble 3 + 4 per member
    assert "Search leaderboard" in page and "Run manifest (run.json)" in page and "Ensemble of the top 2" in page
    for member in ensemble_run["metrics"]["members"]:
        assert f"trial {member['trial_id']}" in page
    md = (ensemble_run["report"] / "report.md").read_text()
    assert "](model_1/confusion_matrix.png)" in md and "](confusion_matrix.png)" in md


@pytest.mark.slow
def test_rerun_replaces_only_the_report_folder(ensemble_run, tmp_path):
    run_dir = tmp_path / "again"
    shutil.copytree(ensemble_run["run_dir"], run_dir)
    before = tuner_files(run_dir)
    out = retrain_best(str(run_dir), epochs=1, seed=0)
    assert (out / "best_model.keras").is_file() and not (out / "model_1").exists()
    check_model_folder(out)
    assert tuner_files(run_dir) == before
    assert not list(run_dir.glob(".report.*"))


@pytest.mark.slow
def test_patience_flag_reaches_the_fit_and_the_record(tiny_run, tmp_path):
    run_dir = copy_run(tiny_run, tmp_path / "patient")
    out = retrain_best(str(run_dir), epochs=2, seed=0, patience=9)
    assert json.loads((out / "metrics.json").read_text())["patience"] == 9
    assert retrain.retrain_plan(runs.read_run(run_dir)["args"], 2, None)[2] != 9  # not the run's own patience


@pytest.mark.slow
def test_train_plus_val_uses_the_trial_epoch_count(tiny_run, tmp_path):
    run_dir = copy_run(tiny_run, tmp_path / "tv")
    best = ranked_trials(read_trials(run_dir))[0]
    path = run_dir / f"trial_{best['trial_id']}" / "trial.json"
    trial = json.loads(path.read_text())
    trial["best_step"] = 2  # as if the search had peaked at epoch 3
    path.write_text(json.dumps(trial))
    out = retrain_best(str(run_dir), train_on="train+val", seed=0)
    m = json.loads((out / "metrics.json").read_text())
    assert m["train_on"] == "train+val" and m["epochs_trained"] == 3
    assert "val_accuracy" not in pd.read_csv(out / "history.csv")


@pytest.mark.slow
def test_distillation_compares_student_teacher_and_alone(ensemble_run, tiny_run, tmp_path):
    import keras

    student_dir = copy_run(tiny_run, tmp_path / "student")
    out = retrain_best(str(student_dir), epochs=1, seed=0, distill_from=str(ensemble_run["run_dir"]))
    m = json.loads((out / "metrics.json").read_text())
    d = m["distillation"]
    assert d["temperature"] == DISTILL_TEMPERATURE and d["alpha"] == DISTILL_ALPHA
    assert set(d) >= {"student", "teacher", "student_alone"}
    # Same split, same teacher models: the teacher scores exactly what the ensemble scored.
    assert d["teacher"]["test_accuracy"] == pytest.approx(ensemble_run["metrics"]["ensemble"]["test_accuracy"])
    check_model_folder(out)
    check_model_folder(out / "alone")
    student = keras.models.load_model(out / "best_model.keras", safe_mode=True)
    assert student.loss == "sparse_categorical_crossentropy"
    page = (out / "report.html").read_text()
    assert "Distilled student" in page and "Student trained alone" in page and "Teacher" in page


def test_soften_and_distillation_loss():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    np.testing.assert_allclose(soften(probs, 1.0), probs, rtol=1e-5)
    soft = soften(probs)
    np.testing.assert_allclose(soft.sum(1), 1.0, rtol=1e-6)
    assert soft[0].max() < probs[0].max()  # flatter at T=4
    y = np.array([0, 2])
    student = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]], dtype=np.float32)
    target = distill_targets(y, probs)
    assert target.shape == (2, 4) and list(target[:, 0]) == [0.0, 2.0]
    s_soft = soften(student)
    kl = (soft * (np.log(soft) - np.log(s_soft))).sum(1)
    hard = -np.log(student[[0, 1], y])
    expected = DISTILL_ALPHA * hard + (1 - DISTILL_ALPHA) * DISTILL_TEMPERATURE ** 2 * kl
    got = np.asarray(distillation_loss(target, student))
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_retrain_plan_flags_then_recorded_defaults_then_the_search():
    searched = {"max_epochs": 6, "patience": 3}
    recorded = {**searched, "retrain_defaults": {"epochs": 30, "train_on": "full", "patience": 5}}
    assert retrain.retrain_plan(searched, None, None) == (6, "train", 3)
    assert retrain.retrain_plan(recorded, None, None) == (30, "full", 5)
    assert retrain.retrain_plan(recorded, 2, "train") == (2, "train", 5)
    assert retrain.retrain_plan(recorded, 45, None, 45) == (45, "full", 45)  # --patience: the flag wins
    assert retrain.retrain_plan({}, None, None) == (retrain.config.DEFAULT_EPOCHS, "train", retrain.config.DEFAULT_PATIENCE)


def test_trial_epochs():
    assert trial_epochs({"best_step": 4}, 10) == 5
    assert trial_epochs({"best_step": None, "hyperparameters": {"values": {"tuner/epochs": 7}}}, 10) == 7
    assert trial_epochs({}, 10) == 10
    # a Hyperband continuation's best_step counts from its own fit, which began after its parent's epochs
    continued = {"best_step": 1, "hyperparameters": {"values": {"tuner/initial_epoch": 2, "tuner/epochs": 4}}}
    assert trial_epochs(continued, 10) == 4


def test_errors_are_user_errors(tiny_run, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        retrain_best(str(tmp_path / "nope"))

    failed = copy_run(tiny_run, tmp_path / "failed")
    for path in failed.glob("trial_*/trial.json"):
        t = json.loads(path.read_text())
        t["status"], t["score"] = "FAILED", None
        path.write_text(json.dumps(t))
    with pytest.raises(UserError, match="no completed trial"):
        retrain_best(str(failed))

    gone = copy_run(tiny_run, tmp_path / "gone")
    manifest = json.loads((gone / runs.RUN_JSON).read_text())
    manifest["space"] = str(tmp_path / "deleted_space.py")
    (gone / runs.RUN_JSON).write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="never run on its own: pass --space PATH"):
        retrain_best(str(gone))  # a space file named in run.json is never imported (README: Safe loading)
    with pytest.raises(UserError, match="deleted_space.py does not exist"):
        retrain_best(str(gone), space=str(tmp_path / "deleted_space.py"))

    plain = copy_run(tiny_run, tmp_path / "plain")
    with pytest.raises(UserError, match="teacher must be another run"):
        retrain_best(str(plain), distill_from=str(plain))
    with pytest.raises(UserError, match="has no retrained model"):
        retrain_best(str(plain), distill_from=str(copy_run(tiny_run, tmp_path / "teacher")))
    with pytest.raises(UserError, match="--train-on"):
        retrain_best(str(plain), train_on="val")


def test_cli_reports_a_missing_run_on_one_line(tmp_path):
    proc = run_cli("retrain-best", str(tmp_path / "missing"))
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and len(proc.stderr.strip().splitlines()) == 1


def test_report_says_size_speed_schedule_and_links_the_review(ensemble_run):
    out, m = ensemble_run["report"], ensemble_run["metrics"]
    for i, member in enumerate(m["members"], start=1):
        facts = member["model"]
        saved = out / f"model_{i}" / "best_model.keras"
        assert facts["size_mb"] == pytest.approx(saved.stat().st_size / 1e6, abs=0.01)
        import keras

        assert facts["parameters"] == keras.models.load_model(saved).count_params() > 0
        assert 0 < facts["ms_per_image_batched"] < 1000 and 0 < facts["ms_per_image_single"] < 10000
        assert facts["views_per_image"] == 1  # no TTA: the image alone
        assert member["optimizer"] and "learning_rate_schedule" in member and member["final_learning_rate"] > 0
    assert m["ensemble"]["model"]["parameters"] == sum(x["model"]["parameters"] for x in m["members"])
    page = (out / "report.html").read_text()
    assert "href='review/review.html'" in page and (out / "review" / "review.html").is_file()
    assert "tuner/" not in page.split("Run manifest", 1)[0]  # Keras Tuner bookkeeping stays out of the tables
    wall = m["members"][0]["wall_s"]
    assert f"<td>{wall:.1f}</td>" in page and "learning-rate schedule" in page and "parameters" in page
