"""Bad input on every command: one line on stderr, non-zero exit, no traceback, nothing changed on disk."""

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, run_cli, tree_snapshot, write_idx, write_idx_set
from fashion_tuner import data as data_mod

SPACES = Path(__file__).parent / "spaces"
FILES = data_mod.FILES["fashion_mnist"]


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("bad")
    dirs = {name: write_idx_set(root / name, n_train=100, n_test=40) for name in
            ("corrupt", "truncated", "magic", "labels")}
    path = dirs["corrupt"] / FILES["test_images"][0]
    path.write_bytes(path.read_bytes()[:200])
    path = dirs["truncated"] / FILES["train_images"][0]
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-784]))
    write_idx(dirs["magic"] / FILES["train_labels"][0], np.zeros((100, 28, 28), dtype=np.uint8))
    write_idx(dirs["labels"] / FILES["test_labels"][0], np.full(40, 10, dtype=np.uint8))
    (root / "empty").mkdir()
    dirs["empty"] = root / "empty"
    (root / "a_file").write_text("not a directory")
    dirs["a_file"] = root / "a_file"
    (root / "no_project").mkdir()
    (root / "no_project" / "notes.txt").write_text("nothing tuned here")
    dirs["no_project"] = root / "no_project"
    (root / "nan_weights.json").write_text('{"Shirt": NaN}')
    dirs["nan_weights"] = root / "nan_weights.json"
    return dirs


@pytest.fixture(scope="module")
def results(tiny_run, tmp_path_factory) -> Path:
    """A results dir holding a copy of the tiny run and a run whose every trial failed."""
    root = tmp_path_factory.mktemp("results")
    shutil.copytree(tiny_run, root / "tiny")
    shutil.copytree(tiny_run, root / "all-failed")
    for path in (root / "all-failed").glob("trial_*/trial.json"):
        trial = json.loads(path.read_text())
        trial.update(status="FAILED", score=None, message="ValueError: broken")
        path.write_text(json.dumps(trial))
    return root


# (arguments, a phrase the message must contain); {bad[...]} and {results} are filled in below
CASES = [
    (["search", "--space", "nosuch"], "unknown space 'nosuch'"),
    (["search", "--tuner", "grid"], "invalid choice: 'grid'"),
    (["search", "--dataset", "cifar10"], "invalid choice: 'cifar10'"),
    (["search", "--max-epochs", "0"], "--max-epochs: expected a positive whole number"),
    (["search", "--max-epochs", "ten"], "--max-epochs: expected a positive whole number, got 'ten'"),
    (["search", "--max-trials", "-3"], "--max-trials: expected a positive whole number"),
    (["search", "--factor", "1"], "expected a whole number of 2 or more"),
    (["search", "--val-size", "2"], "--val-size: expected a fraction"),
    (["search", "--name", "../escape"], "run name '../escape' is not allowed"),
    (["search", "--results-dir", "{a_file}"], "is a file, not a directory"),
    (["search", "--space", str(SPACES / "no_builder.py")], "defines no build_model"),
    (["search", "--space", "missing_space.py"], "space file missing_space.py does not exist"),
    (["search", "--subset", "5"], "smaller than the 10 classes"),
    (["search", "--data-dir", "{corrupt}", "--skip-md5"], "not a readable gzip file"),
    (["search", "--data-dir", "{truncated}", "--skip-md5"], "truncated"),
    (["search", "--data-dir", "{magic}", "--skip-md5"], "magic number 2051, expected 2049"),
    (["search", "--data-dir", "{labels}", "--skip-md5"], "outside 0-9"),
    (["search", "--data-dir", "{empty}"], "holds none of the fashion_mnist IDX files"),
    (["search", "--data-dir", "{magic}"], "MD5"),
    (["search", "--tuner", "bayesian", "--name", "tiny"], "already holds a different search"),
    (["search", "--class-weight", "nofile.json"], "--class-weight nofile.json"),
    (["search", "--class-weight", "{nan_weights}"], "must map a class 0-9 to a positive number"),
    (["search", "--seed", "4294967295"], "--seed: expected a whole number from 0 to 2147483647"),
    (["search", "--seed", str(2 ** 64)], "--seed: expected a whole number from 0 to 2147483647"),
    (["retrain-best", "{results}/tiny", "--seed", "-1"], "--seed: expected a whole number from 0"),
    (["retrain-best", "{results}/tiny", "--patience", "0"], "--patience: expected a positive whole number"),
    (["search", "--name", "n" * 300], "300 characters long; use at most 100"),
    (["retrain-best", "{results}/nosuch"], "does not exist"),
    (["retrain-best", "--name", "all-failed"], "no completed trial"),
    (["retrain-best", "{no_project}"], "no run.json"),
    (["review", "{no_project}"], "no Keras Tuner project"),
    (["review", "{results}/nosuch"], "does not exist"),
    (["predict", "--model", "{results}/nosuch.keras", "x.png"], "does not exist"),
    (["compare", "nosuch-run"], "nosuch-run"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
]


@pytest.mark.parametrize("args, phrase", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input(args, phrase, bad_data, results, data_args):
    fill = {**{k: str(v) for k, v in bad_data.items()}, "results": str(results)}
    args = [a.format(**fill) for a in args]
    if args[0] in ("search", "retrain-best", "compare") and "--results-dir" not in args:
        args += ["--results-dir", str(results)]
    if args[0] == "search" and "--data-dir" not in args:
        args += data_args
    before_results = tree_snapshot(results)
    before_repo_results = tree_snapshot(REPO / "results")
    result = run_cli(*args)
    assert result.returncode not in (0, None), result.stdout[-500:]
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("error: ") and phrase in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert tree_snapshot(results) == before_results
    assert tree_snapshot(REPO / "results") == before_repo_results


def test_debug_flag_shows_the_traceback(results):
    result = run_cli("retrain-best", str(results / "nosuch"), "--debug")
    assert result.returncode == 2 and "Traceback" in result.stderr and "error: " in result.stderr


def test_every_subcommand_has_help_with_an_example():
    for command in ("search", "retrain-best", "predict", "review", "list", "compare"):
        result = run_cli(command, "--help")
        assert result.returncode == 0 and "example:" in result.stdout, command
    top = run_cli("--help")
    for command in ("search", "retrain-best", "review"):
        assert command in top.stdout


def test_retrain_best_before_any_search_says_to_search_first(tmp_path):
    result = run_cli("retrain-best", "--results-dir", str(tmp_path / "empty"))
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "no runs" in lines[0] and "run a search first" in lines[0] and "main.py search --space mlp" in lines[0]


def test_space_names_are_case_insensitive_and_options_have_help():
    from fashion_tuner.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["search", "--space", "CNN"]).space == "cnn"
    assert parser.parse_args(["search", "--space", "Mlp"]).space == "mlp"
    for command in ("search", "retrain-best", "predict", "review", "list", "compare"):
        sub = parser._subparsers._group_actions[0].choices[command]
        missing = [a.option_strings or a.dest for a in sub._actions if not a.help]
        assert not missing, (command, missing)


def test_a_typo_gets_did_you_mean():
    result = run_cli("serch", "--space", "mlp")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "did you mean 'search'?" in lines[0], result.stderr
    from fashion_tuner.cli import did_you_mean

    assert "did you mean 'hyperband'?" in did_you_mean(
        "argument --tuner: invalid choice: 'hyprband' (choose from 'hyperband', 'bayesian', 'random')")
    assert did_you_mean("argument COMMAND: invalid choice: 'zzz' (choose from 'search', 'list')") == ""


def test_search_help_groups_its_options():
    from fashion_tuner.cli import build_parser

    search = build_parser()._subparsers._group_actions[0].choices["search"]
    groups = {g.title: [a.dest for a in g._group_actions] for g in search._action_groups}
    assert {"space", "tuner", "max_epochs", "time_budget"} <= set(groups["what to search, and its budget"])
    assert {"subset", "val_source", "cv"} <= set(groups["data and split (the held-out test images never reach the search)"])
    assert {"results_dir", "name", "seed", "keep_checkpoints"} <= set(groups["the run folder"])
    assert {"role", "strategy"} <= set(groups["devices and distributed search"])
    ungrouped = [d for d in groups["options"] if d not in ("help", "debug", "quiet", "backend")]
    assert not ungrouped  # every search option sits in a group
