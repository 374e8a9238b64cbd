"""The benchmark harness: the smoke suite end to end, the budget arithmetic and the Optuna adapter."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO

from benchmarks import common
from benchmarks import run as bench
from benchmarks import suites as bench_suites
from benchmarks import seeds as bench_seeds
from benchmarks.peers import count_epoch_lines
from benchmarks.plain_keras_tuner import hyperband_iteration_epochs, plan


@pytest.mark.benchmark
@pytest.mark.slow
def test_smoke_suite_writes_results_and_table(tmp_path, data_source):
    out = tmp_path / "results.json"
    args = [sys.executable, "-m", "benchmarks.run", "--suite", "smoke", "--out", str(out),
            "--work-dir", str(tmp_path / "work"), "--data-dir", str(data_source["dir"])]
    if data_source["skip_md5"]:
        args.append("--skip-md5")
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    results = json.loads(out.read_text())
    assert results["schema"] == bench.SCHEMA
    last = results["last_invocation"]
    assert last["suite"] == "smoke" and last["date"]
    assert last["machine"]["cores"] >= 1 and last["machine"]["device"]
    assert last["versions"]["python"] and last["versions"]["keras"]
    assert len(last["data_md5"]["md5"]) == 4
    entries = [results["figures"]["accuracy"]["runs"]["mlp"], results["figures"]["memory"]]
    for entry in entries:
        assert entry["status"] == "ok", entry.get("error")
        assert entry["date"] and entry["machine"]["device"] and entry["versions"]["tensorflow-cpu" if
                                                                                  "tensorflow-cpu" in entry["versions"]
                                                                                  else "tensorflow"]
        assert entry["data_md5"]["md5"] == last["data_md5"]["md5"]
        assert entry["commands"] and all(isinstance(c, str) and c.startswith("python ") for c in entry["commands"])
    mlp = results["figures"]["accuracy"]["runs"]["mlp"]
    assert mlp["commands"][0].startswith("python main.py search --space mlp")
    assert mlp["commands"][1].startswith("python main.py retrain-best")
    (row,) = mlp["seeds"]  # no --seeds: one seed, 42
    assert row["seed"] == 42 and mlp["n_seeds"] == 1 and mlp["sd_test_accuracy"] is None
    assert row["test_accuracy"] > 0.3 and row["test_accuracy_ci95"][0] < row["test_accuracy"] < row["test_accuracy_ci95"][1]
    assert row["search_epochs"] == 1 and row["retrain_epochs"] >= 1
    memory = results["figures"]["memory"]
    assert memory["trials"] == bench.MEMORY["smoke"]["trials"] and isinstance(memory["growth_mb"], float)

    table = (tmp_path / "RESULTS.md").read_text()
    assert "| fashion_tuner `mlp`" in table and ", 1 seed (42)" in table and "RSS growth" in table
    assert "Google AutoML" in table and "0.9390" in table
    assert "python -m benchmarks.run --suite smoke --only mlp" in table


def _smoke_suite(tmp_path: Path, data_source: dict, *args: str) -> Path:
    """``python -m benchmarks.run --suite smoke ARGS`` on the test data, writing under ``tmp_path``; the results file."""
    out = tmp_path / "results.json"
    argv = ["--suite", "smoke", *args, "--out", str(out), "--work-dir", str(tmp_path / "work"), "--data-dir",
            str(data_source["dir"]), *(["--skip-md5"] if data_source["skip_md5"] else [])]
    assert bench.main(argv) == 0
    return out


@pytest.mark.benchmark
@pytest.mark.slow
def test_two_seeds_of_a_tiny_row_give_seed_rows_mean_and_sd(tmp_path, data_source):
    """`--seeds 42 7`: the row runs once per seed (search and retrain-best both get --seed, the split follows it)."""
    out = _smoke_suite(tmp_path, data_source, "--only", "mlp", "--seeds", "42", "7")

    entry = json.loads(out.read_text())["figures"]["accuracy"]["runs"]["mlp"]
    rows = entry["seeds"]
    assert [r["seed"] for r in rows] == [42, 7] and entry["status"] == "ok"
    for r in rows:
        assert r["status"] == "ok" and r["split"]["seed"] == r["seed"]
        search, retrain = r["commands"]
        assert f"--seed {r['seed']}" in search and f"--seed {r['seed']}" in retrain
        assert f"bench-mlp-s{r['seed']}" in search
        assert r["test_accuracy"] > 0.3  # 10 classes: chance is 0.1
        assert r["test_accuracy_ci95"] == bench_seeds.wilson(r["test_accuracy"], r["n_test"]) and r["ci_method"] == "Wilson"
        assert r["wall_s"] == pytest.approx(r["search_wall_s"] + r["retrain_wall_s"], abs=0.2)
    accs = [r["test_accuracy"] for r in rows]
    assert entry["n_seeds"] == 2
    assert entry["mean_test_accuracy"] == pytest.approx(statistics.fmean(accs), abs=1e-5)
    assert entry["sd_test_accuracy"] == pytest.approx(statistics.stdev(accs), abs=1e-5)
    assert entry["rerun"] == "python -m benchmarks.run --suite smoke --only mlp --seeds 42 7"

    line = next(ln for ln in (tmp_path / "RESULTS.md").read_text().splitlines() if ln.startswith("| fashion_tuner `mlp`"))
    ci = [bench_seeds.wilson(a, r["n_test"]) for a, r in zip(accs, rows)]
    assert (f"| {statistics.fmean(accs):.4f} +- {statistics.stdev(accs):.4f} (2 seeds; "
            f"42: {accs[0]:.4f} ({ci[0][0]:.3f}-{ci[0][1]:.3f}); 7: {accs[1]:.4f} ({ci[1][0]:.3f}-{ci[1][1]:.3f})) |") in line


def _seed_row(seed, acc, wall=100.0, status="ok"):
    return {"seed": seed, "status": status, "test_accuracy": acc, "n_test": 4000, "wall_s": wall,
            "search_wall_s": wall - 40, "retrain_wall_s": 40.0, "search_epochs": 3, "retrain_epochs": 2,
            "tuner": "hyperband", "max_epochs": 3, "commands": [f"python main.py search --seed {seed}"],
            **({"error": "exit 1: boom"} if status != "ok" else {})}


def test_seeds_of_the_same_row_merge_and_other_code_replaces():
    base = {"suite": "full", "definition": {"space": "cnn"}, "code_digest": "abc", "status": "ok",
            "rerun": "python -m benchmarks.run --suite full --only cnn --seeds 7 123"}
    first = bench_seeds.merge(None, {**base, "seeds": [_seed_row(42, 0.94)]})
    assert first["n_seeds"] == 1 and first["sd_test_accuracy"] is None and first["mean_test_accuracy"] == 0.94
    both = bench_seeds.merge(first, {**base, "seeds": [_seed_row(7, 0.95), _seed_row(123, 0.93)]})
    assert [r["seed"] for r in both["seeds"]] == [42, 7, 123]
    assert both["mean_test_accuracy"] == pytest.approx(0.94) and both["sd_test_accuracy"] == pytest.approx(0.01)
    assert both["commands"] == [f"python main.py search --seed {s}" for s in (42, 7, 123)]
    assert both["rerun"] == "python -m benchmarks.run --suite full --only cnn --seeds 42 7 123"
    assert first["rerun"] == "python -m benchmarks.run --suite full --only cnn"  # seed 42 alone: the default
    rerun = bench_seeds.merge(both, {**base, "seeds": [_seed_row(7, 0.96)]})  # a seed run again replaces its row
    assert [(r["seed"], r["test_accuracy"]) for r in rerun["seeds"]] == [(42, 0.94), (123, 0.93), (7, 0.96)]
    other = bench_seeds.merge(both, {**base, "code_digest": "def", "seeds": [_seed_row(42, 0.90)]})
    assert [r["seed"] for r in other["seeds"]] == [42] and other["mean_test_accuracy"] == 0.90
    broken = bench_seeds.merge(None, {**base, "seeds": [_seed_row(42, 0.94), _seed_row(7, None, status="failed")]})
    assert broken["status"] == "partial" and broken["seeds_failed"] == [7] and "seed 7: exit 1: boom" in broken["error"]


def test_render_shows_mean_sd_per_seed_wilson_and_old_single_seed_rows():
    legacy = {"suite": "full", "date": "2026-01-01", "status": "ok", "rerun": "python -m benchmarks.run --suite full "
              "--only mlp", "test_accuracy": 0.903, "test_accuracy_ci95": [0.894, 0.911], "n_test": 4000,
              "search_wall_s": 881.1, "retrain_wall_s": 49.2, "wall_s": 930.3, "search_epochs": 213,
              "retrain_epochs": 21, "tuner": "hyperband", "max_epochs": 20, "split": {"seed": 42}}
    multi = bench_seeds.merge(None, {"suite": "full", "status": "ok", "rerun": "r15", "definition": {
        "note": "15-minute budget"}, "seeds": [_seed_row(42, 0.94, 800.0), _seed_row(7, 0.95, 900.0),
                                               _seed_row(123, 0.93, 850.0, status="failed")]})
    results = {"schema": bench.SCHEMA, "figures": {}}
    bench.store(results, "mlp", legacy)
    bench.store(results, "cnn_15m", multi)
    table = bench.render(results)
    assert "| test accuracy, 95% CI (Wilson) |" in table
    lo, hi = bench_seeds.wilson(0.903, 4000)  # the stored bootstrap interval is re-expressed as Wilson's
    assert f"| 0.9030 ({lo:.3f}-{hi:.3f}), 1 seed (42) | 14m41s search + 49 s retrain | 213 + 21 | full |" in table
    line = next(ln for ln in table.splitlines() if "`cnn_15m`" in ln)
    assert "15-minute budget" in line and "| 0.9450 +- 0.0071 (2 seeds; 42: 0.9400 (" in line
    assert "failed seed(s) 123" in line and "(slowest seed 15m00s)" in line
    assert table.index("`mlp`") < table.index("`cnn_15m`")


def test_bad_seed_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--seeds", "7", "minus-one"])
    assert exc.value.code == 2
    assert "error: argument --seeds: a seed is a whole number from 0 to" in capsys.readouterr().err


def test_anytime_curves_targets_and_spread(tmp_path):
    from benchmarks import anytime

    points = [{"time": 105.0, "score": 0.80}, {"time": 103.0, "score": 0.70}, {"time": 110.0, "score": 0.75},
              {"time": 120.0, "score": 0.91}, {"time": 200.0, "score": 0.99}]  # the last is past the budget
    curve = anytime.best_so_far(points, started=100.0, budget_s=60)
    assert curve == [[3.0, 0.7], [5.0, 0.8], [20.0, 0.91]]  # improvements only, time-ordered, within the budget
    assert anytime.time_to(curve, 0.8) == 5.0 and anytime.time_to(curve, 0.95) is None
    assert anytime.value_at(curve, 2.9) is None and anytime.value_at(curve, 19.9) == 0.8
    # a run that never reaches the target counts as the slowest: 2 of 3 reached -> median is the slower of them
    assert anytime.spread([10.0, None, 30.0]) == {"median": 30.0, "min": 10.0, "max": 30.0}
    assert anytime.spread([10.0, None, None])["median"] is None
    summary = anytime.summarize({"42": curve, "7": [[8.0, 0.85]]}, budget_s=60, target=0.8)
    assert summary["runs"] == 2 and summary["reached"] == 2
    assert summary["final_val_accuracy"] == {"median": 0.88, "min": 0.85, "max": 0.91}
    assert summary["time_to_target_s"] == {"median": 6.5, "min": 5.0, "max": 8.0}
    assert len(summary["band"]) == anytime.GRID_POINTS and summary["band"][-1] == {
        "t": 60.0, "n": 2, "median": 0.88, "min": 0.85, "max": 0.91}
    assert summary["band"][0] == {"t": 3.0, "n": 1, "median": 0.7, "min": 0.7, "max": 0.7}

    random = anytime.summarize({"42": [[30.0, 0.85]], "7": [[9.0, 0.8]]}, budget_s=60, target=0.8)
    entry = {"suite": "full", "budget_s": 60, "target": 0.8, "seeds": [42, 7], "rerun": "r", "speedup_vs_random": 3.0,
             "summary": {"ours": {"key": "ours", **summary}, "random search": {"key": "random", **random}}}
    from benchmarks.peer_steps import speedup

    assert speedup(entry["summary"]) == round(19.5 / 6.5, 2)
    table = bench.render({"schema": bench.SCHEMA, "figures": {"peers_time": entry}})
    assert "| ours | 0.8800 (0.8500-0.9100) | 6 s (5 s-8 s) | 2 of 2 | full | `r` |" in table
    assert "| random search | 0.8250 (0.8000-0.8500) | 20 s (9 s-30 s) | 2 of 2 |" in table
    assert "Random search needs x3.00 ours' time to reach the target" in table

    progress = tmp_path / "p.jsonl"
    progress.write_text('{"time": 1.0, "score": 0.5}\n{"time": 2.0, "score": NaN}\n{"time": 3.0, "sco')
    assert anytime.progress_points(progress) == [{"time": 1.0, "score": 0.5}]  # NaN and a cut-off line skipped


def test_peers_time_seeds_of_two_invocations_merge_and_other_settings_replace():
    from benchmarks.peer_steps import merge_time

    def figure(seeds, finals, commit, budget_s=60):
        runs = {a: {str(s): {"command": f"{a} {s}", "status": "ok", "wall_s": 60.0} for s in seeds}
                for a in ("ours", "random", "optuna")}
        curves = {a: {str(s): [[10.0 * (i + 1), f - d]] for i, (s, f) in enumerate(zip(seeds, finals))}
                  for a, d in (("ours", 0.0), ("random", 0.05), ("optuna", 0.03))}
        return {"suite": "full", "budget_s": budget_s, "target": 0.8, "max_epochs": 6, "subset": 1000,
                "seeds": seeds, "rerun": f"python -m benchmarks.run --suite full --only peers_time --seeds "
                f"{' '.join(map(str, seeds))}", "versions": {"git_commit": commit}, "runs": runs, "curves": curves,
                "summary": {}, "status": "ok"}

    old = figure([42], [0.86], "aaa")
    merged = merge_time(old, figure([7, 123], [0.88, 0.84], "bbb"))
    assert merged["seeds"] == [42, 7, 123]
    assert merged["rerun"].endswith("--only peers_time --seeds 42 7 123")
    assert merged["runs"]["ours"]["42"]["git_commit"] == "aaa"  # each seed says what it was measured at
    assert merged["runs"]["optuna"]["123"]["git_commit"] == "bbb"
    ours = merged["summary"]["fashion_tuner search --space cnn (Hyperband, EarlyStopping)"]
    assert ours["runs"] == 3 and ours["final_val_accuracy"] == {"median": 0.86, "min": 0.84, "max": 0.88}
    assert ours["reached"] == 3 and merged["speedup_vs_random"] == 1.0  # random reaches 0.8 at the same times
    assert len(merged["commands"]) == 9 and merged["status"] == "ok"
    # a rerun seed replaces the old one; a different budget is a different figure
    assert merge_time(old, figure([42], [0.9], "bbb"))["runs"]["ours"]["42"].get("git_commit") is None
    other = figure([7], [0.88], "bbb", budget_s=120)
    assert merge_time(old, other) is other
    # --approaches ours: ours rerun at a seed, the peers' runs there kept
    ours_only = figure([42], [0.9], "ccc")
    for a in ("random", "optuna"):
        del ours_only["runs"][a], ours_only["curves"][a]
    merged = merge_time(old, ours_only)
    assert merged["seeds"] == [42] and merged["runs"]["ours"]["42"]["git_commit"] == "ccc"
    assert merged["runs"]["random"]["42"]["git_commit"] == "aaa"
    assert merged["curves"]["optuna"] == old["curves"]["optuna"]
    assert merged["summary"]["plain Keras Tuner RandomSearch, same CNN space"]["runs"] == 1
    failed = figure([7], [0.88], "bbb")
    failed["runs"]["optuna"]["7"].update(status="failed", error="exit 1: no optuna")
    assert merge_time(old, failed)["status"] == "failed" and "optuna seed 7" in merge_time(old, failed)["error"]


def test_run_for_stops_the_whole_process_group(tmp_path):
    from benchmarks import anytime

    child = tmp_path / "child.pid"
    script = (f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
              f" open({str(child)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    result = anytime.run_for(["python", "-c", script], budget_s=3, log=tmp_path / "log.txt")
    assert result["stopped"] and result["wall_s"] < 15
    pid = int(child.read_text())
    for _ in range(50):  # the grandchild got the signal too (gone, or a zombie until init reaps it)
        stat = Path(f"/proc/{pid}/stat")
        if not stat.exists() or stat.read_text().split()[2] == "Z":
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"process {pid} survived the stop")


@pytest.mark.benchmark
@pytest.mark.slow
def test_peers_at_equal_wall_time_smoke(tmp_path, data_source):
    """Three approaches, 30 s each (20 s left a loaded machine without a finished trial), one seed: each runs for the budget (or finishes sooner) and leaves a curve."""
    out = tmp_path / "results.json"
    args = ["--suite", "smoke", "--only", "peers_time", "--out", str(out), "--work-dir", str(tmp_path / "work"),
            "--data-dir", str(data_source["dir"])] + (["--skip-md5"] if data_source["skip_md5"] else [])
    bench.main(args)
    entry = json.loads(out.read_text())["figures"]["peers_time"]
    budget = bench_suites.PEERS_TIME["smoke"]["budget_s"]
    assert entry["budget_s"] == budget and entry["seeds"] == [42]
    assert f"--time-budget {budget}s" in entry["runs"]["ours"]["42"]["command"]  # ours keeps to it by itself
    try:
        import optuna  # noqa: F401  (benchmarks/requirements.txt; absent here the row must say why)
        approaches = ("ours", "random", "optuna")
    except ModuleNotFoundError:
        approaches = ("ours", "random")
        assert entry["runs"]["optuna"]["42"]["status"] == "failed"
        assert "optuna" in entry["runs"]["optuna"]["42"]["error"]
    for a in approaches:
        run, curve = entry["runs"][a]["42"], entry["curves"][a]["42"]
        assert run["status"] == "ok", run
        assert run["wall_s"] <= budget + 12  # stopped at the budget (SIGTERM, then SIGKILL 5 s later)
        assert run["stopped"] or run["rc"] == 0
        assert curve and run["trials_completed"] >= len(curve)  # at least one trial finished within the budget
        assert all(0 < t <= budget for t, _ in curve)
        assert [b for _, b in curve] == sorted(b for _, b in curve) and curve[-1][1] > 0.1  # better than chance
    table = (tmp_path / "RESULTS.md").read_text()
    assert f"Peers at equal wall time ({budget} s per approach and seed, seeds 42" in table
    assert "| plain Keras Tuner RandomSearch, same CNN space |" in table
    assert (tmp_path / "anytime.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_render_merges_and_splices_readme(tmp_path):
    results = {"schema": bench.SCHEMA, "figures": {}}
    entry = {"suite": "full", "date": "2026-01-01T00:00:00+00:00", "status": "ok", "commands": ["python main.py x"],
             "rerun": "python -m benchmarks.run --suite full --only peers", "machine": {"device": "CPU only (2 cores)"},
             "versions": {}, "data_md5": {}, "epoch_budget": 40,
             "rows": {"ours": {"approach": "ours", "test_accuracy": 0.9, "wall_s": 100.0, "epochs_used": 40},
                      "keras_tuner_mlp": {"approach": "plain KT", "test_accuracy": 0.85, "wall_s": 50.0,
                                          "epochs_used": 38, "accuracy_ratio_to_ours": 0.9444,
                                          "wall_ratio_to_ours": 0.5},
                      "optuna_cnn": {"approach": "optuna", "status": "failed", "error": "exit 1: boom"}}}
    bench.store(results, "peers", entry)
    bench.store(results, "cnn", {**entry, "status": "failed", "error": "exit 2: no data", "rerun": "r"})
    mlp_rows = {"ours": {"approach": "our mlp", "test_accuracy": 0.86, "wall_s": 40.0, "epochs_used": 30},
                "keras_tuner_mlp": {"approach": "plain KT", "test_accuracy": 0.843, "wall_s": 80.0, "epochs_used": 30,
                                    "accuracy_ratio_to_ours": 0.9802, "wall_ratio_to_ours": 2.0}}
    bench.store(results, "peers_mlp", {**entry, "epoch_budget": 30, "rows": mlp_rows})
    table = bench.render(results)
    assert "| plain KT | peer, equal budget | 0.8500 (x0.944 of ours) | 50 s (x0.50) | 38 of 40 | full |" in table
    assert "| our mlp | ours, equal budget | 0.8600 | 40 s | 30 of 30 | full |" in table
    assert "| plain KT | peer, equal budget | 0.8430 (x0.980 of ours) | 1m20s (x2.00) | 30 of 30 | full |" in table
    assert "failed: exit 1: boom" in table and "failed: exit 2: no data" in table
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{bench.MARK_START}\nold\n{bench.MARK_END}\nafter\n")
    assert bench.update_readme(table, readme)
    text = readme.read_text()
    assert "old" not in text and text.startswith("intro\n") and text.endswith(f"{bench.MARK_END}\nafter\n")
    assert "plain KT" in text
    assert not bench.update_readme(table, tmp_path / "missing.md")


def test_the_15_minute_row_gives_the_retrain_what_the_search_left():
    from benchmarks.suites import ACCURACY_ROWS, MIN_RETRAIN_S

    row = ACCURACY_ROWS["cnn_15m"]
    assert row.retrain_budget("full", 190.4) == ["--time-budget", "589s"]  # a search that spent its 3 minutes
    assert row.retrain_budget("full", 40.0) == ["--time-budget", "740s"]  # one that stopped after the defaults
    assert row.retrain_budget("full", 10_000.0) == ["--time-budget", f"{MIN_RETRAIN_S}s"]
    assert row.retrain_budget("quick", 40.0) == [] and ACCURACY_ROWS["cnn_15m_defaults"].retrain_budget("full", 40) == []
    assert "--time-budget" not in row.retrain_extra("full")  # one budget, not two


def test_selected_expands_groups_and_rejects_unknown():
    assert bench.selected("quick", ["accuracy", "cnn", "memory"]) == ["mlp", "cnn", "cnn_15m", "cnn_15m_defaults",
                                                                      "transfer", "cnn_100k", "memory"]
    assert bench.selected("smoke", None) == list(bench.SUITE_MEMBERS["smoke"])
    with pytest.raises(SystemExit, match="unknown benchmark"):
        bench.selected("quick", ["nope"])


def test_hyperband_budget_matches_keras_tuner_schedule():
    # max_epochs 3, factor 2: bracket 1 = 3 trials x 2 epochs + 2 continued x 1; bracket 0 = 3 trials x 3.
    assert hyperband_iteration_epochs(3, 2) == 3 * 2 + 2 * 1 + 3 * 3
    assert plan(250) == {"max_epochs": 15, "factor": 2, "hyperband_iterations": 1, "planned_epochs": 250}
    assert plan(500)["hyperband_iterations"] == 2
    small = plan(80)
    assert small["hyperband_iterations"] == 1 and small["max_epochs"] < 15
    assert abs(small["planned_epochs"] - 80) <= min(abs(hyperband_iteration_epochs(m, 2) - 80) for m in range(1, 16))


def test_count_epoch_lines_reads_keras_verbose_2_output():
    text = ("Epoch 2/3\n8/8 - 1s - 95ms/step - accuracy: 0.5 - loss: 1.3 - val_accuracy: 0.4 - val_loss: 1.5\n"
            "[1/2] trial 0000  val_accuracy=0.4\n2/2 - 0s - 82ms/step - accuracy: 0.59 - loss: 0.70\n")
    assert count_epoch_lines(text) == 2


def test_optuna_adapter_builds_the_cnn_space():
    optuna = pytest.importorskip("optuna")
    from benchmarks.optuna_cnn import optuna_hyperparameters
    from fashion_tuner import spaces

    cnn = spaces.load_space("cnn")
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    trial = study.ask()
    hp = optuna_hyperparameters(trial)
    model = cnn.build_model(hp)
    assert model.output_shape == (None, 10)
    assert set(trial.params) == {k for k in hp.values}  # every active value came from Optuna
    assert hp.values["batch_size"] in (64, 128, 256)
    assert hp.values["dense_units"] in (64, 128, 256, 512)
    blocks = hp.values["conv_blocks"]
    assert all(f"convs_block{i}" in hp.values for i in range(1, blocks + 1))
    assert not any(f"convs_block{i}" in hp.values for i in range(blocks + 1, 5))  # conditional stays conditional


def test_code_digest_follows_the_searched_code_not_docs_or_results(tmp_path, monkeypatch):
    for rel in ("main.py", "requirements.txt", "fashion_tuner/cli.py", "search_spaces/cnn.py", "README.md",
                "benchmarks/results.json"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    monkeypatch.setattr(common, "REPO", tmp_path)
    before = common.code_digest()
    (tmp_path / "README.md").write_text("new figures")
    (tmp_path / "benchmarks" / "results.json").write_text("{}")
    assert common.code_digest() == before
    (tmp_path / "search_spaces" / "cnn.py").write_text("a changed default")
    assert common.code_digest() != before


def test_timed_space_keeps_the_fits_of_earlier_search_processes(tmp_path):
    """A search runs in several processes; the last may only find the budget spent and must not erase the fits."""
    from benchmarks.overhead import summarize

    timing = tmp_path / "timing.json"
    timing.write_text(json.dumps({"imported_at": 100.0, "exit_at": 110.0, "earlier_s": 0.0,
                                  "fits": [{"fit_s": 8.0, "epoch_s": [4.5, 3.5]}]}))
    env = {**os.environ, "FASHION_TUNER_BENCH_TIMING": str(timing), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", "import benchmarks.space_timed_mlp"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    after = json.loads(timing.read_text())
    assert after["fits"] == [{"fit_s": 8.0, "epoch_s": [4.5, 3.5]}]
    assert after["earlier_s"] == 10.0 and after["exit_at"] >= after["imported_at"]
    figures = summarize(after, {"fits": [{"fit_s": 7.0, "epoch_s": [4.0, 3.0]}]}, search_wall_s=20.0)
    assert figures["trials"] == 1 and figures["epoch_ratio"] == round(3.5 / 3.0, 3)
    assert figures["search_s"] >= 10.0


def _ablation_run(seed, base, others, fit_s=10.0):
    variants = {"baseline": {"val_accuracy": base, "val_accuracy_tta": base + 0.002, "fit_s": fit_s, "params": 5}}
    for name, (acc, fit) in others.items():
        variants[name] = {"val_accuracy": acc, "val_accuracy_tta": acc - 0.001, "fit_s": fit, "params": 7}
    return {"seed": seed, "variants": variants}


def test_ablation_summary_pairs_each_seed_with_its_baseline():
    from benchmarks.ablation import summarize

    runs = [_ablation_run(42, 0.90, {"erasing": (0.905, 10.5), "ema": (0.91, 20.0), "residual": (0.89, 10.0)}),
            _ablation_run(7, 0.80, {"erasing": (0.802, 10.0), "ema": (0.795, 20.0), "residual": (0.79, 10.0)})]
    s = summarize(runs)
    assert list(s) == ["baseline", "erasing", "ema", "residual"]  # VARIANTS order, only those run at every seed
    assert s["erasing"]["gain_pp"] == {"mean": 0.35, "min": 0.2, "max": 0.5}  # paired: 0.5 at 42, 0.2 at 7
    assert s["erasing"]["verdict"] == "pays" and s["erasing"]["time_ratio"] == 1.025
    assert s["ema"]["verdict"] == "mixed"  # +1.0 and -0.5 pp: better on average, not at every seed
    assert s["ema"]["gain_pp"]["mean"] == 0.25 and s["ema"]["time_ratio"] == 2.0
    assert s["residual"]["verdict"] == "no gain"  # -1.0 pp at both seeds
    assert s["baseline"]["verdict"] == "baseline" and s["baseline"]["tta_gain_pp"]["mean"] == 0.2
    assert s["erasing"]["tta_gain_pp"]["mean"] == -0.1 and s["erasing"]["params"] == 7


def test_erasing_batches_black_out_patches_of_every_image_at_probability_one():
    import numpy as np
    from benchmarks.ablation import erasing_batches

    x = np.full((32, 28, 28, 1), 255.0, "float32")
    images, labels = next(iter(erasing_batches(x, np.arange(32), 32, 1.0, seed=3)))
    erased = (images.numpy() == 0).mean(axis=(1, 2, 3))
    assert sorted(labels.numpy().tolist()) == list(range(32))  # shuffled, none lost
    assert (erased > 0).all() and erased.max() < 0.5  # a patch per image, never the whole image
    assert set(np.unique(images.numpy())) == {0.0, 255.0}  # filled with black, the rest untouched


@pytest.mark.benchmark
@pytest.mark.slow
def test_ablation_smoke_trains_each_variant_and_renders_the_table(tmp_path, data_source):
    out = tmp_path / "results.json"
    args = ["--suite", "smoke", "--only", "ablation", "--out", str(out), "--work-dir", str(tmp_path / "work"),
            "--data-dir", str(data_source["dir"])] + (["--skip-md5"] if data_source["skip_md5"] else [])
    assert bench.main(args) == 0
    entry = json.loads(out.read_text())["figures"]["ablation"]
    assert entry["status"] == "ok" and entry["seeds"] == [42] and entry["n_train"] == 300
    variants = entry["runs"][0]["variants"]
    assert list(variants) == ["baseline", "erasing"] and variants["erasing"]["harness"] == {"erasing": 0.5}
    assert all(v["fit_s"] > 0 and v["params"] > 100_000 for v in variants.values())
    assert entry["summary"]["erasing"]["verdict"] in ("pays", "mixed", "no gain")
    table = (tmp_path / "RESULTS.md").read_text()
    assert "Ablations of training tricks on the cnn defaults (1 epochs on 300 training images" in table
    assert "| erasing | " in table


def _fit(arm: str, seed: int, round_: int, epoch_s: float, val: float) -> dict:
    return {"arm": arm, "seed": seed, "pair": f"{seed}/{round_}", "status": "ok", "epoch_s": epoch_s,
            "val_accuracy": [0.1, val]}


def test_epoch_pairs_summary_pairs_each_fit_with_its_baseline():
    from benchmarks.epoch_pairs import summarise

    fits = [_fit("float32", 42, 0, 10.0, 0.80), _fit("mixed_bfloat16", 42, 0, 8.0, 0.81),
            _fit("float32", 42, 1, 12.0, 0.80), {"arm": "mixed_bfloat16", "seed": 42, "pair": "42/1",
                                                 "status": "failed", "error": "boom"},
            _fit("float32", 7, 0, 11.0, 0.78), _fit("mixed_bfloat16", 7, 0, 5.5, 0.76)]
    out = summarise(("float32", "mixed_bfloat16"), fits)
    assert out["float32"]["median_epoch_s"] == 11.0 and out["float32"]["val_accuracy"] == {"42": 0.8, "7": 0.78}
    arm = out["mixed_bfloat16"]
    assert arm["median_epoch_s"] == 6.75 and arm["speedup"] == round(11.0 / 6.75, 3)
    assert arm["pair_speedups"] == [1.25, 2.0]  # the failed fit of round 1 has no pair
    assert arm["accuracy_diffs"] == [0.01, -0.02] and arm["accuracy_diff_mean"] == -0.005


@pytest.mark.benchmark
@pytest.mark.slow
def test_precision_pair_and_roofline_smoke_are_stored_and_rendered(tmp_path, data_source):
    """`--only precision roofline` at the smoke setting: float32 and mixed_bfloat16 each fitted in a fresh
    process; the roofline's FLOPs, achieved FLOP/s and peak."""
    out = tmp_path / "results.json"
    args = ["--suite", "smoke", "--only", "precision", "roofline", "--out", str(out), "--work-dir", str(tmp_path / "work"),
            "--data-dir", str(data_source["dir"])]
    assert bench.main(args + (["--skip-md5"] if data_source["skip_md5"] else [])) == 0
    figures = json.loads(out.read_text())["figures"]
    entry = figures["precision"]
    assert entry["status"] == "ok" and entry["arms"] == ["float32", "mixed_bfloat16"] and entry["images"] == 64
    assert [f["policy"] for f in entry["fits"]] == ["float32", "mixed_bfloat16"]
    assert entry["summary"]["mixed_bfloat16"]["speedup"] > 0 and len(entry["load_average_1m"]) == 2
    assert entry["commands"][0].startswith("python -m benchmarks.epoch_pairs --compare precision --setting smoke")
    assert "--one tensorflow mixed_bfloat16 --images 64 --epochs 1" in entry["commands"][2]
    roof = figures["roofline"]
    assert roof["status"] == "ok" and roof["images"] == 128 and roof["achieved_gflops"] > 0
    assert roof["forward_mflop_per_image"] == pytest.approx(45.4, abs=0.1)  # convolutions 43.8 + dense 1.05 + element-wise 0.54
    assert roof["peak"]["cores"] >= 1 and roof["matmul_gflops"]["float32"] > 0
    table = (tmp_path / "RESULTS.md").read_text()
    assert "| default CNN, float32 vs mixed_bfloat16: s/epoch ratio" in table
    assert "| default CNN roofline (128 images; 136.2 MFLOP per training image; most FLOPs: block2_conv2" in table


def test_roofline_counts_the_flops_of_a_tiny_model_by_hand():
    import keras

    from benchmarks import roofline

    inputs = keras.Input((8, 8, 1), name="image")  # named: an unnamed input is "input_layer_1" after another model
    x = keras.layers.RandomFlip("horizontal", name="flip")(inputs)  # resampling: not counted
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(x)  # with bias
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Activation("relu", name="relu")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Conv2D(2, 3, use_bias=False, activation="relu", name="conv2")(x)  # valid: 4x4 -> 2x2
    x = keras.layers.Flatten(name="flat")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="dense")(x)
    rows = {r["layer"]: r["forward_flops"] for r in roofline.layer_flops(keras.Model(inputs, outputs))}
    assert rows == {
        "image": 0, "flip": 0,
        "conv": 2 * 8 * 8 * 4 * 3 * 3 * 1 + 8 * 8 * 4,  # multiply-adds of every output + the bias
        "bn": 7 * 8 * 8 * 4, "relu": 8 * 8 * 4,
        "pool": 3 * 4 * 4 * 4,  # 3 comparisons per output of a 2x2 window
        "conv2": 2 * 2 * 2 * 2 * 3 * 3 * 4 + 2 * 2 * 2,  # no bias; the relu 1 per output
        "flat": 0,
        "dense": 2 * 8 * 10 + 10 + 3 * 10,  # bias, softmax 3 per output
    }
    assert sum(rows.values()) == 4864 + 1792 + 256 + 192 + 584 + 200


def test_machine_records_the_flags_that_set_the_pace():
    """Two "AMD EPYC" kinds differ ~6x in a bfloat16 CNN epoch: the record tells them apart by their flags."""
    from benchmarks import common

    assert common.cpu_flags("model name\t: AMD EPYC\nflags\t\t: fpu avx avx2 fma\n") == "avx2"
    assert common.cpu_flags("flags\t\t: avx2 avx512f avx512_bf16 avx512_vnni sse\n") == "avx2 avx512f avx512_vnni avx512_bf16"
    assert common.cpu_flags("processor\t: 0\n") == ""
    assert common.machine()["cpu_flags"] == common.cpu_flags()


def test_roofline_peak_from_cpuinfo():
    from benchmarks import roofline

    epyc = "processor\t: 0\ncpu MHz\t\t: 2445.426\nflags\t\t: fpu avx avx2 fma\n"
    top = roofline.peak(epyc, cores=2)
    assert top["vector"] == "AVX2+FMA" and top["float32_flops_per_cycle_core"] == 8 * 2 * roofline.FMA_UNITS
    assert top["float32_gflops"] == round(2 * 2.445426 * 32, 1) and top["bfloat16_gflops"] is None
    spr = "cpu MHz\t\t: 2000.0\nflags\t\t: avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile\n"
    assert roofline.peak(spr, cores=4)["bfloat16_gflops"] == 4 * 2.0 * roofline.AMX_BF16_PER_CYCLE
    assert roofline.peak("cpu MHz : 3000\nflags : avx512f avx512_bf16\n", 1)["bfloat16_gflops"] == 3.0 * 128
    genoa = "vendor_id\t: AuthenticAMD\ncpu MHz\t: 2000\nflags\t: avx2 fma avx512f avx512_bf16\n"
    assert roofline.peak(genoa, 1)["float32_flops_per_cycle_core"] == 32  # 512-bit FMAs on 256-bit pipes


def test_epoch_pairs_arms_run_as_their_commands_say(monkeypatch):
    """Each comparison's arms exist; an arm's thread limits and oneDNN switch reach the fit's environment."""
    from benchmarks import backend_epoch, epoch_pairs

    assert all(arm in epoch_pairs.ARMS for arms in epoch_pairs.COMPARISONS.values() for arm in arms)
    assert set(epoch_pairs.COMPARISONS) == set(bench_suites.PAIRS)
    seen = {}
    monkeypatch.setattr(backend_epoch, "run_one", lambda *a, env=None, options: seen.update(args=a, env=env, kw=vars(options))
                        or {"status": "ok"})
    out = epoch_pairs.run_arm("threads_2x1", images=None, epochs=5, seed=7, val_images=None, data_dir=None)
    assert seen["env"] == {"TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "1"}
    assert out["command"] == ("TF_NUM_INTRAOP_THREADS=2 TF_NUM_INTEROP_THREADS=1 python -m benchmarks.backend_epoch "
                              "--one tensorflow float32 --images 0 --epochs 5 --seed 7 --val-images 0")
    out = epoch_pairs.run_arm("channels_first_onednn", images=64, epochs=1, seed=42, val_images=64, data_dir=None)
    assert out["command"].startswith("TF_ENABLE_ONEDNN_OPTS=1 python") and "--data-format channels_first" in out["command"]
    out = epoch_pairs.run_arm("mixed_bfloat16_keras_bn", images=64, epochs=1, seed=42, val_images=64, data_dir=None)
    assert seen["kw"]["keras_batch_norm"] is True and out["command"].endswith("--keras-batch-norm")
    out = epoch_pairs.run_arm("batch256", images=None, epochs=5, seed=42, val_images=None, data_dir=None, seconds=600,
                              auto="bfloat16", first_plan=16)  # equal wall time, in what --mixed-precision auto picks
    assert seen["args"][1] == "mixed_bfloat16" and seen["kw"]["seconds"] == 600 and seen["kw"]["batch_size"] == 256
    assert out["command"].endswith("--val-images 0 --batch-size 256 --learning-rate 0.002 --seconds 600 --first-plan 16")
    epoch_pairs.run_arm("auto", images=64, epochs=1, seed=42, val_images=64, data_dir=None, seconds=4, auto=None)
    assert seen["args"][1] == "float32" and seen["kw"]["batch_size"] == 64 and seen["kw"]["learning_rate"] is None
    out = epoch_pairs.run_arm("tfdata", images=64, epochs=1, seed=42, val_images=64, data_dir=None, auto="bfloat16")
    assert seen["kw"]["input_pipeline"] == "tfdata" and out["command"].endswith("--val-images 64 --input-pipeline tfdata")
    out = epoch_pairs.run_arm("family_narrow", images=10000, epochs=1, seed=43, val_images=None, data_dir=None,
                              seconds=240, auto=None, first_plan=6)
    assert seen["kw"]["space"] == epoch_pairs.CPU_SPACE and seen["kw"]["hp_values"] == {"family": "narrow"}
    assert out["command"].endswith("--first-plan 6 --space benchmarks/spaces/cnn_cpu.py --hp family=narrow")
    # a command line says every option that differs from the defaults, and parses back to the same options
    options = backend_epoch.FitOptions(seed=7, val_images=None, keras_batch_norm=True, learning_rate=0.002,
                                       seconds=90.0, first_plan=4, space="benchmarks/spaces/cnn_cpu.py",
                                       hp_values={"family": "narrow", "dropout_head": 0.3})
    argv = backend_epoch.one_argv("tensorflow", "float32", 640, 2, None, options)
    assert backend_epoch.FitOptions.from_args(backend_epoch.build_parser().parse_args(argv[3:])) == options
    assert argv[-4:] == ["--hp", "family=narrow", "--hp", "dropout_head=0.3"] and "--data-format" not in argv
    assert "--first-plan" not in backend_epoch.FitOptions(first_plan=4).argv()  # only with --seconds
    assert backend_epoch.FitOptions().argv() == []
    assert backend_epoch.parse_hp(["family=stem", "dropout_head=0.3", "conv_blocks=2"]) == {
        "family": "stem", "dropout_head": 0.3, "conv_blocks": 2}
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        backend_epoch.parse_hp(["family"])


def test_family_setting_overrides_only_its_own_comparison():
    from benchmarks import epoch_pairs

    assert set(epoch_pairs.SETTING_OVERRIDES) <= set(epoch_pairs.TIMED)
    assert set(epoch_pairs.COMPARISONS["family"][1:]) == {f"family_{f}" for f in ("narrow", "separable", "stem")}
    assert epoch_pairs.other_spaces(epoch_pairs.COMPARISONS["family"]) == [epoch_pairs.CPU_SPACE]
    assert epoch_pairs.other_spaces(epoch_pairs.COMPARISONS["batch"]) == []


@pytest.mark.benchmark
def test_cpu_families_build_the_networks_they_name():
    """benchmarks/spaces/cnn_cpu.py: ``vgg`` is the cnn space's default model; the others differ in the trunk only
    and are cheaper (narrow), wider but separable, or start at 14 px (stem)."""
    import numpy as np

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras_tuner as kt

    from fashion_tuner import spaces

    x = np.random.default_rng(0).integers(0, 256, (32, 28, 28, 1)).astype("float32")
    spaces.set_data_context(spaces.DataContext(image_shape=(28, 28, 1), num_classes=10, mean=72.9, std=90.0,
                                               seed=1, extra={"steps_per_epoch": 10, "max_epochs": 2}))
    cpu, cnn = spaces.load_space(str(REPO / "benchmarks" / "spaces" / "cnn_cpu.py")), spaces.load_space("cnn")
    models = {}
    for family in cpu.FAMILIES:
        hp = kt.HyperParameters()
        cpu.build_model(hp)
        hp.values["family"] = family
        models[family] = cpu.build_model(hp)
        assert models[family].predict(x, verbose=0).shape == (32, 10)
    assert models["vgg"].count_params() == cnn.build_model(kt.HyperParameters()).count_params() == 805_546
    assert models["narrow"].count_params() < models["vgg"].count_params() / 2
    kinds = {type(layer).__name__ for layer in models["separable"].layers}
    assert "SeparableConv2D" in kinds
    assert models["stem"].get_layer("stem_conv").strides == (2, 2)


@pytest.mark.benchmark
@pytest.mark.slow
def test_batch_pair_fits_each_arm_for_the_same_seconds(tmp_path, data_source):
    """`--only batch` at the smoke setting: every arm fits for the setting's seconds, not its epochs: the cosine
    laid out for 2 epochs is lengthened to what fits, and the fit stops at the deadline."""
    from benchmarks import epoch_pairs

    out = tmp_path / "results.json"
    args = ["--suite", "smoke", "--only", "batch", "--out", str(out), "--work-dir", str(tmp_path / "work"),
            "--data-dir", str(data_source["dir"])]
    assert bench.main(args + (["--skip-md5"] if data_source["skip_md5"] else [])) == 0
    entry = json.loads(out.read_text())["figures"]["batch"]
    seconds = epoch_pairs.SETTINGS["smoke"]["seconds"]
    assert entry["status"] == "ok" and entry["seconds"] == seconds and entry["epochs"] is None
    assert [f["batch_size"] for f in entry["fits"]] == [64, 128, 256]
    assert [round(f["learning_rate"], 5) for f in entry["fits"]] == [0.001, 0.00141, 0.002]
    for fit in entry["fits"]:  # 64 images: one step per epoch, so far more than the first plan fit
        assert fit["first_plan"] == epoch_pairs.SETTINGS["smoke"]["first_plan"] < fit["epochs"]
        assert fit["fit_s"] <= seconds + 3
    assert "s per fit" in (tmp_path / "RESULTS.md").read_text() and "fits of " in (tmp_path / "RESULTS.md").read_text()


def test_a_row_records_the_retrains_speed_per_full_data_epoch():
    from benchmarks.render import wall_cell
    from benchmarks.steps import work_done

    assert work_done({"wall_s": 300.0, "epochs_trained": 10, "train_images": 30_000}) == {
        "retrain_epoch_s": 30.0, "full_epoch_s": 60.0}
    assert work_done({"wall_s": 300.0, "epochs_trained": 10}) == {"retrain_epoch_s": 30.0, "full_epoch_s": None}
    assert work_done({"epochs_trained": 0}) == {}
    rows = [{"seed": s, "search_wall_s": 60, "retrain_wall_s": 600, "wall_s": 660, "full_epoch_s": e}
            for s, e in ((42, 36.2), (7, 50.9))]
    assert wall_cell(rows).endswith("; 36/51 s per full-data retrain epoch")


def test_budget_load_allows_max_of_5_percent_and_15_s_and_renders_each_command():
    from benchmarks import budget_load, render_extra

    assert budget_load.verdict(180, 195)["within"] and not budget_load.verdict(180, 196)["within"]  # 15 s
    assert budget_load.verdict(900, 945)["within"] and not budget_load.verdict(900, 946)["within"]  # 5 %: 45 s
    entry = {"status": "ok", "suite": "full", "rerun": "python -m benchmarks.run --suite full --only budget_load",
             "busy_loops": 2, "cores": 2, "space": "cnn", "search": budget_load.verdict(180, 190.2),
             "retrain": budget_load.verdict(180, 201.0)}
    search_row, retrain_row = render_extra.budget_load_rows(entry)
    assert "`search` --time-budget 3m00s" in search_row and "3m10s (+10 s)" in search_row
    assert "`retrain-best`" in retrain_row and "(+21 s)" in retrain_row and "<= budget + 15 s" in retrain_row
    assert render_extra.budget_load_rows(None) == []


@pytest.mark.benchmark
@pytest.mark.slow
def test_budget_load_smoke_runs_both_commands_beside_busy_loops(tmp_path, data_source):
    out = tmp_path / "results.json"
    args = [sys.executable, "-m", "benchmarks.run", "--suite", "smoke", "--only", "budget_load", "--out", str(out),
            "--work-dir", str(tmp_path / "work"), "--data-dir", str(data_source["dir"])]
    proc = subprocess.run(args + (["--skip-md5"] if data_source["skip_md5"] else []), cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    entry = json.loads(out.read_text())["figures"]["budget_load"]
    assert entry["status"] == "ok" and entry["busy_loops"] >= 1
    for key in ("search", "retrain"):
        assert entry[key]["budget_s"] == 30 and entry[key]["wall_s"] > 5


def _fidelity_rows(pairs: list[tuple[float, float, float]]) -> list[dict]:
    kinds = ["defaults"] + ["local" if i % 2 else "uniform" for i in range(1, len(pairs))]
    return [{"kind": k, "low": low, "mid": mid, "reference": ref} for k, (low, mid, ref) in zip(kinds, pairs)]


def test_fidelity_summary_scores_the_pick_at_each_rung_against_the_defaults_and_seeds_merge():
    from benchmarks import fidelity
    from benchmarks.render_extra import fidelity_lines

    settings = dict(space="cnn", seed=3, configs=4, subset=10000, val_size=None, low=2, mid=6, ref=10)
    # the best 2-epoch score (a uniform draw) is the worst at the reference; the best 6-epoch score (a local
    # draw) beats the defaults there by 0.5 pp; the mid ranking is perfect, the low one reversed
    rows = _fidelity_rows([(0.80, 0.86, 0.880), (0.81, 0.87, 0.885), (0.84, 0.85, 0.870), (0.79, 0.84, 0.860)])
    out = fidelity.summarize(rows, settings)
    assert out["picks"]["low"] == {"index": 2, "kind": "uniform", "score": 0.84, "reference": 0.870,
                                   "delta_ref_pp": -1.0}
    assert out["picks"]["mid"]["index"] == 1 and out["picks"]["mid"]["delta_ref_pp"] == 0.5
    assert out["mid_vs_reference"]["rho"] == 1.0 and out["low_vs_reference"]["rho"] < 0.5
    assert out["defaults_rank_at_reference"] == 2 and out["best_reference_over_defaults_pp"] == 0.5
    old = {"status": "ok", "runs": {"3": out, "4": {**out, "settings": {**settings, "seed": 4}},
                                    "5": {**out, "settings": {**settings, "seed": 5, "ref": 20}}}}
    rerun = fidelity.summarize(rows[:3], {**settings, "seed": 4})
    merged = fidelity.merge(old, {"status": "ok", "runs": {"4": rerun}})
    assert list(merged["runs"]) == ["3", "4"] and merged["runs"]["4"] is rerun  # seed 5 ran other settings
    lines = fidelity_lines({**merged, "suite": "full"})
    row = next(ln for ln in lines if ln.startswith("| 3 |"))
    assert "| 4 on 10,000 images | 2: " in row and "| 2 of 4 | uniform -1.00 | local +0.50 | +0.50 |" in row
    assert "--only fidelity --seeds 3" in row


@pytest.mark.benchmark
@pytest.mark.slow
def test_fidelity_smoke_trains_each_configuration_at_both_fidelities(tmp_path, data_source):
    entry = json.loads(_smoke_suite(tmp_path, data_source, "--only", "fidelity", "--seeds", "5").read_text())[
        "figures"]["fidelity"]
    run = entry["runs"]["5"]
    assert entry["status"] == "ok" and [c["kind"] for c in run["configurations"]] == ["defaults", "local", "uniform"]
    assert all(0.0 < c["reference"] <= 1.0 and c["seconds"] > 0 for c in run["configurations"])
    assert len({json.dumps(c["values"], sort_keys=True) for c in run["configurations"]}) == 3
    assert entry["commands"][0].startswith("python -m benchmarks.fidelity --seed 5 --configs 3 --subset 300")
    assert "| 5 | 3 on 300 images |" in (tmp_path / "RESULTS.md").read_text()
