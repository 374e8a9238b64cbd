"""``compare`` like for like (what each test accuracy was trained on, values as the trials hold them, no row
empty in every run, a searched batch size not shown as a budget) and ``review NAME`` / one review folder per run."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from fashion_tuner.review import compare_command, review_command
from fashion_tuner.review.project import read_project


@pytest.fixture
def results(tiny_run, tmp_path):
    """Two copies of the tiny MLP run under ``results/``: ``a`` retrained (a report/metrics.json), ``b`` not."""
    root = tmp_path / "results"
    for name in ("a", "b"):
        shutil.copytree(tiny_run, root / name)
    (root / "a" / "report").mkdir(exist_ok=True)
    (root / "a" / "report" / "metrics.json").write_text(json.dumps(
        {"test_accuracy": 0.8123, "train_images": 600, "train_on": "train", "epochs_trained": 3}))
    return root


def test_compare_is_like_for_like(results, tmp_path, capsys):
    assert compare_command(["a", "b"], str(results), out=str(tmp_path / "cmp")) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv", index_col=0, dtype=str, keep_default_na=False)
    assert table.loc["test accuracy", "a"] == "0.8123" and table.loc["retrained on", "a"] == "600 images (train) x 3 epochs"
    assert table.loc["retrained on", "b"] == "-"
    assert "600 images (train) x 3 epochs" in printed
    assert not (table == "-").all(axis=1).any()  # e.g. no "budget: factor" row for two random searches
    assert "budget: factor" not in table.index
    project = read_project(results / "a")
    ints = [n for n, hp in project.space.items() if hp["type"] == "Int" or
            (hp["type"] == "Choice" and all(isinstance(v, int) for v in hp["values"] or [None]))]
    assert ints and any(f"hp: {n}" in table.index for n in ints)
    for name in ints:  # 256, not 256.0 (a column with blanks would be float)
        if f"hp: {name}" in table.index:
            assert not table.loc[f"hp: {name}"].str.endswith(".0").any(), table.loc[f"hp: {name}"]
    if "batch_size" in project.space:  # the mlp space searches it: --batch-size was not its budget
        assert table.loc["budget: batch_size", "a"] == "searched (hp row)"


@pytest.mark.slow
def test_review_takes_a_run_name_and_writes_into_the_run(results, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # "a" is not a folder here: it is the run of that name under --results-dir
    assert review_command(["a"], results_dir=str(results)) == 0
    assert (results / "a" / "review" / "review.html").is_file()
    assert review_command([str(results)]) == 0  # a folder of runs: each into its own review/, as above
    assert (results / "b" / "review" / "review.html").is_file() and not (results / "review").exists()


def test_a_colour_means_one_epoch_budget_in_every_panel(tiny_run, tmp_path, monkeypatch):
    """Each epoch budget gets one colour, the same in the timeline, the score panels and the Hyperband
    plot (which colours by budget, not by bracket), and never the failed trials' red."""
    import matplotlib
    from matplotlib.colors import to_hex

    from fashion_tuner.review import plots

    run = tmp_path / "hb"
    shutil.copytree(tiny_run, run)
    for trial_json, (epochs, bracket) in zip(sorted(run.glob("trial_*/trial.json")), [(3, 0), (1, 1)]):
        state = json.loads(trial_json.read_text())  # as Hyperband would have run them: budgets 3 and 1
        state["hyperparameters"]["values"].update({"tuner/epochs": epochs, "tuner/initial_epoch": 0,
                                                   "tuner/bracket": bracket, "tuner/round": 0})
        trial_json.write_text(json.dumps(state))
    project = read_project(run)
    colours = {e: to_hex(c) for e, c in plots.budget_colours(project).items()}
    assert set(colours) == {1, 3} and len(set(colours.values())) == 2
    assert to_hex(plots.FAILED_COLOUR) not in colours.values()
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    plots.plot_timeline(project, tmp_path / "t.png")
    plots.plot_hp_scores(project, tmp_path / "s.png")
    plots.plot_hyperband(project, tmp_path / "h.png")
    seen = {}  # legend label -> colours it is drawn in, over every figure
    for fig in figures:
        for ax in fig.axes:
            for artist in [*ax.patches, *ax.collections]:
                label = artist.get_label()
                if label.endswith("-epoch budget"):
                    face = artist.get_facecolor()
                    face = face[0] if getattr(face, "ndim", 1) == 2 else face
                    seen.setdefault(label, set()).add(to_hex(face, keep_alpha=False))
    assert seen == {f"{e}-epoch budget": {c} for e, c in colours.items()}, seen
    bars = {(int(p.get_height()), to_hex(p.get_facecolor(), keep_alpha=False)) for p in figures[-1].axes[0].patches}
    # epochs per trial: coloured by budget, not by bracket; the height is what ran (epochs.jsonl: the tiny
    # run trained 1 epoch per trial), not the budget written into trial.json above
    assert bars == {(1, c) for c in colours.values()}
    matplotlib.pyplot.close("all")
