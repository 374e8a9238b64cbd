"""The markdown benchmark section from a results file, and its splice into docs/benchmarks.md.

Every accuracy interval shown is Wilson's (:mod:`fashion_tuner.stats`), recomputed from the stored
accuracy and number of test images, so figures recorded before the switch (bootstrap or Wald
intervals) print with the same method as new ones.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.cells import acc, ci_of, code, dur, suite_cell
from benchmarks.common import REPO
from benchmarks.render_extra import ablation_lines, anytime_lines, reliability_lines, search_value_lines
from benchmarks.seeds import seed_rows, summarize
from benchmarks.suites import ACCURACY, ACCURACY_ROWS, REFERENCES
from fashion_tuner.stats import CI_METHOD

README = REPO / "docs" / "benchmarks.md"  # where --update-readme splices the table
MARK_START, MARK_END = "<!-- bench:start -->", "<!-- bench:end -->"
CI_HEADER = f"95% CI ({CI_METHOD})"
PEER_KEYS = ("ours", "keras_tuner_mlp", "optuna_cnn")


# ----------------------------------------------------------------------------- accuracy rows

def accuracy_cell(rows: list[dict]) -> str:
    """Mean +- sd over the ok seeds, then each seed's accuracy and Wilson interval; one seed: ``..., 1 seed``."""
    ok = [r for r in rows if r.get("status", "ok") == "ok"]
    failed = [r for r in rows if r not in ok]
    s = summarize(rows)
    if len(ok) == 1:
        text = f"{acc(ok[0].get('test_accuracy'), ci_of(ok[0]))}, 1 seed ({ok[0].get('seed')})"
    else:
        per_seed = "; ".join(f"{r.get('seed')}: {acc(r.get('test_accuracy'), ci_of(r))}" for r in ok)
        text = f"{s['mean_test_accuracy']:.4f} +- {s['sd_test_accuracy']:.4f} ({len(ok)} seeds; {per_seed})"
    if failed:
        text += "; failed seed(s) " + ", ".join(str(r.get("seed")) for r in failed)
    return text


def wall_cell(rows: list[dict]) -> str:
    """Search + retrain wall time: the one seed's, or the mean over seeds and the slowest seed's total."""
    ok = [r for r in rows if r.get("status", "ok") == "ok"]
    speeds = [r["full_epoch_s"] for r in ok if r.get("full_epoch_s")]
    speed = f"; {'/'.join(f'{v:.0f}' for v in speeds)} s per full-data retrain epoch" if speeds else ""
    if len(ok) == 1:
        return f"{dur(ok[0].get('search_wall_s'))} search + {dur(ok[0].get('retrain_wall_s'))} retrain{speed}"
    mean = {k: sum(r.get(k) or 0 for r in ok) / len(ok) for k in ("search_wall_s", "retrain_wall_s")}
    return (f"mean {dur(mean['search_wall_s'])} search + {dur(mean['retrain_wall_s'])} retrain "
            f"(slowest seed {dur(max(r.get('wall_s') or 0 for r in ok))}){speed}")


def accuracy_line(name: str, entry: dict) -> str:
    """One table line for accuracy row ``name`` (any number of seeds, or a failure)."""
    rows = seed_rows(entry)
    ok = [r for r in rows if r.get("status", "ok") == "ok"]
    if not ok:
        return (f"| fashion_tuner `{name}` | ours | failed: {entry.get('error', '')[:80]} | | | {suite_cell(entry)} | "
                f"{code(entry.get('rerun', ''))} |")
    first = ok[0]
    note = (entry.get("definition") or {}).get("note") or (ACCURACY_ROWS[name].note if name in ACCURACY_ROWS else "")
    what = f"search {first.get('tuner')}, max {first.get('max_epochs')} epoch(s), then retrain-best"
    epochs = " / ".join(f"{r.get('search_epochs')} + {r.get('retrain_epochs')}" for r in ok)
    return (f"| fashion_tuner `{name}` ({what}{'; ' + note if note and note != 'defaults' else ''}) | ours | "
            f"{accuracy_cell(rows)} | {wall_cell(rows)} | {epochs} | {suite_cell(entry)} | "
            f"{code(entry.get('rerun', ''))} |")


def accuracy_lines(figures: dict) -> list[str]:
    runs = figures.get("accuracy", {}).get("runs", {})
    order = sorted(runs, key=lambda k: ACCURACY.index(k) if k in ACCURACY else len(ACCURACY))
    return [accuracy_line(name, runs[name]) for name in order]


# ----------------------------------------------------------------------------- peers

def peer_lines(peers: dict) -> list[str]:
    """The lines of one equal-budget comparison (``figures.peers`` or ``figures.peers_mlp``)."""
    lines = []
    for key in PEER_KEYS:
        row = peers.get("rows", {}).get(key)
        if not row:
            continue
        kind = "ours, equal budget" if key == "ours" else "peer, equal budget"
        if row.get("status") == "failed":
            lines.append(f"| {row['approach']} | {kind} | failed: {row.get('error', '')[:80]} | | | "
                         f"{suite_cell(peers)} | {code(peers.get('rerun', ''))} |")
            continue
        ratio = ""
        if key != "ours" and row.get("accuracy_ratio_to_ours") is not None:
            ratio = f" (x{row['accuracy_ratio_to_ours']:.3f} of ours)"
        wall_ratio = f" (x{row['wall_ratio_to_ours']:.2f})" if row.get("wall_ratio_to_ours") is not None else ""
        lines.append(f"| {row['approach']} | {kind} | {acc(row.get('test_accuracy'), ci_of(row))}{ratio} | "
                     f"{dur(row.get('wall_s'))}{wall_ratio} | {row.get('epochs_used')} of {peers.get('epoch_budget')} "
                     f"| {suite_cell(peers)} | {code(peers.get('rerun', ''))} |")
    return lines


# ----------------------------------------------------------------------------- the page

def machine_lines(figures: dict) -> list[str]:
    """The machine, versions and data MD5 of the latest CPU figure (the GPU check has its own row)."""
    stamps = [e for e in entries(figures) if e.get("machine")]
    if not stamps:
        return []
    machines = {(e["machine"].get("device"), e["machine"].get("cpu")) for e in stamps}
    cpu_stamps = [e for e in stamps if e.get("suite") != "gpu"] or stamps
    latest = max(cpu_stamps, key=lambda e: e.get("date", ""))
    m, v = latest["machine"], latest["versions"]
    lines = [f"Machine: {m.get('device')}, {m.get('cpu')}, {m.get('memory_gib')} GiB RAM; Python "
             f"{v.get('python')}, TensorFlow {v.get('tensorflow') or v.get('tensorflow-cpu')}, Keras "
             f"{v.get('keras')}, Keras Tuner {v.get('keras-tuner')}"
             + (" (some figures come from other machines: see benchmarks/results.json)" if len(machines) > 1 else "")
             + "."]
    md5 = latest.get("data_md5", {}).get("md5", {})
    if md5:
        lines.append(f"Data: Fashion-MNIST IDX files ({latest['data_md5'].get('dir')}), MD5 "
                     + ", ".join(f"{k.replace('-ubyte.gz', '')} {v}" for k, v in md5.items()) + ".")
    return lines + [""]


def render(results: dict) -> str:
    """The markdown benchmark section: ours vs peers vs published references, then reliability figures."""
    figures = results.get("figures", {})
    lines = ["## Benchmarks", ""] + machine_lines(figures)
    lines += ["Every figure, with the exact commands, date, machine and versions, is in `benchmarks/results.json`; "
              "rerun a row with its command (`--suite full` on the full data takes hours). Test accuracy is on the "
              f"held-out test split the searches never see; {CI_HEADER} in brackets, per seed. Rows run "
              "at several seeds (`--seeds`) show the mean +- sample standard deviation over seeds (each seed "
              "changes the split and the search).", ""]
    lines += [f"| approach | kind | test accuracy, {CI_HEADER} | wall time | epochs | suite | rerun |",
              "|---|---|---|---|---|---|---|"]
    lines += accuracy_lines(figures)
    for peers in (figures.get("peers"), figures.get("peers_mlp")):
        if peers:
            lines += peer_lines(peers)
    lines += [f"| {approach} | published | {a:.4f} | - | - | {source} | - |" for approach, a, source in REFERENCES]
    lines += ["", "Peers at an equal budget: same data, split, validation set and cores; the budget is the number "
              "of epochs our search (`--space cnn`, or `--space mlp` for the MLP-against-MLP rows) actually "
              "trained (summed over trials), and each search's best trial is evaluated once on the held-out test "
              "split as the search left it (no retraining). Wall ratios are peer / ours, within each comparison.",
              ""]
    lines += anytime_lines(figures.get("peers_time"))
    lines += search_value_lines(figures)
    lines += ablation_lines(figures.get("ablation"))
    lines += ["| reliability figure | value | goal | suite | rerun |", "|---|---|---|---|---|"]
    lines += reliability_lines(figures)
    return "\n".join(lines) + "\n"


def entries(figures: dict) -> list[dict]:
    out = list(figures.get("accuracy", {}).get("runs", {}).values())
    out += [e for k, e in figures.items() if k != "accuracy" and isinstance(e, dict)]
    return out


def update_readme(table: str, readme: Path = README) -> bool:
    """Replace the text between the bench markers of docs/benchmarks.md (or ``readme``); False when the markers are missing."""
    if not readme.is_file():
        return False
    text = readme.read_text()
    start, end = text.find(MARK_START), text.find(MARK_END)
    if start < 0 or end < start:
        return False
    readme.write_text(text[:start + len(MARK_START)] + "\n" + table + text[end:])
    return True
