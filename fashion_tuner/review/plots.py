"""The review's figures, from a :class:`fashion_tuner.review.project.Project`.

Every function takes the project and writes one PNG with matplotlib's Agg backend. A figure that has
nothing to show is not drawn: the function returns ``(None, why)`` and the page prints the reason instead
of an empty panel. Trial numbers, epochs and Int hyperparameters get integer ticks; log-sampled
hyperparameters get a few labelled decades; Hyperband scores are coloured by their epoch budget, since a
2-epoch and a 6-epoch score of one configuration are different measurements.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from fashion_tuner import tables
from fashion_tuner.review.project import Project
from fashion_tuner.review.scales import bins, budgets, categories, is_int, is_log, is_numeric, scaled, used_names

log = logging.getLogger(__name__)
DPI = 90
SEED = 0  # jitter of the points over a choice
PARALLEL_MAX_TRIALS = 20
PARALLEL_MAX_AXES = 12  # hyperparameters drawn in the parallel plot (the most important first)
MAX_FIG_WIDTH = 14.0  # inches: 1260 px at DPI, whatever the number of hyperparameters
HP_PANEL_COLUMNS = 4
# One meaning per colour on a page: a Hyperband epoch budget (in order, smallest first), failed, or neither.
BUDGET_COLOURS = ("C0", "C1", "C2", "C4", "C5", "C6", "C8", "C9")  # matplotlib's cycle without red and grey
FAILED_COLOUR = "C3"  # red: a failed or invalid trial
NEUTRAL_COLOUR = "0.45"  # grey: bars that are not trials (importance)
Figure = tuple  # (Path | None, note str)


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    _plt().close(fig)
    return Path(path)


def _integer_axis(axis) -> None:
    from matplotlib.ticker import MaxNLocator
    axis.set_major_locator(MaxNLocator(integer=True))


def _log_axis(ax, which: str = "x") -> None:
    """Log scale with at most ~5 labelled major ticks and unlabelled minor ticks (no overlapping labels)."""
    from matplotlib.ticker import LogLocator, NullFormatter
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(LogLocator(base=10, numticks=5))
    axis.set_minor_formatter(NullFormatter())


def budget_colours(project: Project) -> dict:
    """``{epoch budget: colour}`` over every trial of the project, so that a colour means the same budget in
    every panel of a page (never red, which means failed; nor a colour used for anything else)."""
    b = budgets(project, project.trials)
    levels = sorted(b.dropna().unique()) if b is not None else []
    return {e: BUDGET_COLOURS[i % len(BUDGET_COLOURS)] for i, e in enumerate(levels)}


def _by_budget(project: Project, frame: pd.DataFrame):
    """``[(label, colour, sub-frame)]``: one group per Hyperband budget, else one group of every row."""
    b = budgets(project, frame)
    if b is None or b.nunique() < 2:
        return [("trial score", BUDGET_COLOURS[0], frame)]
    colours = budget_colours(project)
    return [(f"{tables.fmt(e)}-epoch budget", colours[e], frame[b == e]) for e in sorted(b.dropna().unique())]


def _numeric_axis(ax, hp: dict, values: pd.Series) -> None:
    """x axis over the hyperparameter's declared range (else its values), padded by 5%: log decades for
    log sampling, at most 5 ticks otherwise (whole numbers for an Int)."""
    from matplotlib.ticker import MaxNLocator
    v = pd.to_numeric(values, errors="coerce").dropna()
    lo = hp.get("min") if hp.get("min") is not None else (v.min() if len(v) else None)
    hi = hp.get("max") if hp.get("max") is not None else (v.max() if len(v) else None)
    if is_log(hp):
        _log_axis(ax)
        if lo and hi and hi > lo:
            ax.set_xlim(lo / (hi / lo) ** 0.05, hi * (hi / lo) ** 0.05)
        return
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=is_int(hp, values)))
    if lo is not None and hi is not None and hi > lo:
        pad = 0.05 * (hi - lo)
        ax.set_xlim(lo - pad, hi + pad)


# ----------------------------------------------------------------------------- history, curves, timeline

def plot_history(projects: list[Project], path: Path, title: str) -> Path:
    """Score per trial in start order and the running best, for one or several projects (Hyperband
    budgets in their own colours for a single project)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, p in enumerate(projects):
        ok = p.completed()
        groups = _by_budget(p, ok) if len(projects) == 1 else [(p.name, f"C{i}", ok)]
        for label, color, sub in groups:
            ax.scatter(sub["order"] + 1, sub["score"], s=16, color=color, alpha=0.7, label=label)
        best = ok["score"].cummax() if p.direction == "max" else ok["score"].cummin()
        ax.step(ok["order"] + 1, best, where="post", color="k" if len(projects) == 1 else f"C{i}", alpha=0.6,
                label=f"{p.name} running best" if len(projects) > 1 else "running best")
    _integer_axis(ax.xaxis)
    ax.set_xlabel("trial (start order, from 1)")
    ax.set_ylabel(" / ".join(sorted({str(p.objective) for p in projects})))
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_curves(project: Project, path: Path) -> Figure:
    """Every trial's per-epoch objective (and training loss) on one plot, coloured by the trial's score.
    A Hyperband continuation's line starts from its parent's last epoch."""
    curves = project.curves
    metric = str(project.objective)
    if not curves or not any(metric in r for rows in curves.values() for r in rows):
        return None, ("no per-epoch history: Keras Tuner keeps only each trial's best epoch; fashion_tuner "
                      "searches record every epoch in trial_*/epochs.jsonl")
    plt = _plt()
    df = project.trials.set_index("trial_id")
    scores = df["score"].dropna()
    norm = plt.Normalize(scores.min(), scores.max() if len(scores) and scores.max() > scores.min()
                         else (scores.min() if len(scores) else 0) + 1e-9)
    cmap = plt.get_cmap("viridis" if project.direction == "max" else "viridis_r")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, key in zip(axes, (metric, "loss")):
        for tid, rows in curves.items():
            pts = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
            parent = df["parent_trial"].get(tid) if "parent_trial" in df else None
            if isinstance(parent, str) and parent in curves:
                before = [(r["epoch"], r[key]) for r in curves[parent] if r.get(key) is not None]
                pts = [p for p in before if p[0] <= (pts[0][0] - 1 if pts else 0)][-1:] + pts
            if not pts:
                continue
            score = df["score"].get(tid)
            color = cmap(norm(score)) if score is not None and not math.isnan(score) else "0.6"
            x, y = zip(*pts)
            ax.plot(x, y, "-o", ms=2.5, lw=1.2, color=color, alpha=0.8)
        _integer_axis(ax.xaxis)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.set_title(f"{key} per epoch, every trial", fontsize=10)
        ax.grid(alpha=0.3)
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, label=f"trial score ({metric})")
    fig.suptitle(f"{project.name}: learning curves of {len(curves)} trials", fontsize=10)
    return _save(fig, path), ""


def plot_timeline(project: Project, path: Path) -> Figure:
    """One bar per trial from its start to its end (minutes since the search began), coloured by status
    or Hyperband budget."""
    times = project.times
    if not times:
        return None, "no trial times recorded (fewer than two readable trials)"
    plt = _plt()
    df = project.trials.set_index("trial_id")
    t0 = min(start for start, _, _ in times.values())
    ids = [t for t in project.trials["trial_id"] if t in times]
    fig, ax = plt.subplots(figsize=(10, min(9, 1.2 + 0.22 * len(ids))))
    colours = budget_colours(project)
    seen = set()
    for y, tid in enumerate(ids):
        start, end, _ = times[tid]
        status = df.at[tid, "status"]
        if status != "completed":
            color, label = FAILED_COLOUR, status
        elif colours:
            e = df.at[tid, "epochs"]
            color, label = colours.get(e, BUDGET_COLOURS[0]), f"{tables.fmt(e)}-epoch budget"
        else:
            color, label = BUDGET_COLOURS[0], "completed"
        ax.barh(y, (end - start) / 60, left=(start - t0) / 60, color=color,
                label=None if label in seen else label, height=0.7)
        seen.add(label)
    ax.set_yticks(range(len(ids)), ids, fontsize=7 if len(ids) > 20 else 8)
    ax.invert_yaxis()
    ax.set_xlabel("minutes since the first trial started")
    ax.set_ylabel("trial")
    exact = all(times[t][2] for t in ids)
    how = "from epochs.jsonl" if exact else "approximate: from trial.json write times, trials run one after another"
    total = (max(end for _, end, _ in times.values()) - t0) / 60
    ax.set_title(f"{project.name}: trial timeline, {total:.1f} min ({how})", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, loc="best", framealpha=0.9)
    fig.tight_layout()
    return _save(fig, path), ""


# ----------------------------------------------------------------------------- per hyperparameter

def plot_hp_scores(project: Project, path: Path) -> Figure:
    """Score against each hyperparameter some trial used: scatter for Int/Float, box + points for
    choices; Hyperband budgets in their own colours."""
    ok = project.completed()
    names, unused = used_names(project, ok)
    note = f"not drawn (no completed trial used them): {', '.join(unused)}" if unused else ""
    if not names:
        return None, "no completed trial set a tunable hyperparameter"
    plt = _plt()
    ncols = min(HP_PANEL_COLUMNS, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.7 * nrows), squeeze=False, layout="constrained")
    rng = np.random.default_rng(SEED)
    groups = _by_budget(project, ok)
    for ax, name in zip(axes.flat, names):
        hp = project.space[name]
        if is_numeric(hp, ok[name]):
            for label, color, sub in groups:
                have = sub[name].notna()
                ax.scatter(pd.to_numeric(sub.loc[have, name]), sub.loc[have, "score"], s=14, alpha=0.7,
                           color=color, label=label)
            _numeric_axis(ax, hp, ok[name])
        else:
            cats = categories(hp, ok[name])
            data = [ok.loc[ok[name] == c, "score"].to_numpy() for c in cats]
            if any(len(g) for g in data):
                ax.boxplot([g if len(g) else [np.nan] for g in data], positions=range(len(cats)), widths=0.5,
                           showfliers=False, medianprops={"color": "k"})
            for label, color, sub in groups:
                for i, c in enumerate(cats):
                    g = sub.loc[sub[name] == c, "score"].to_numpy()
                    ax.scatter(i + rng.uniform(-0.12, 0.12, len(g)), g, s=12, alpha=0.7, color=color)
            ax.set_xticks(range(len(cats)))
            ax.set_xticklabels([tables.fmt(c) for c in cats], rotation=30 if len(cats) > 3 else 0, fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    if len(groups) > 1:
        handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=lbl) for lbl, c, _ in groups]
        fig.legend(handles=handles, loc="outside lower center", ncols=len(groups), fontsize=8)
    fig.suptitle(f"{project.name}: {project.objective} against each hyperparameter", fontsize=10)
    return _save(fig, path), note


def plot_parallel(project: Project, path: Path, top: int, importance: pd.DataFrame | None = None) -> Figure:
    """Parallel coordinates of the top trials over the hyperparameters that differ between them (the most
    important first, at most PARALLEL_MAX_AXES), each scaled to 0..1; colour = score."""
    ok = project.ranked()
    ok = ok.head(max(2, min(top, PARALLEL_MAX_TRIALS)))
    used, _ = used_names(project, ok)
    names = tables.differing(ok[used].to_dict("records"), used) if len(ok) > 1 else []
    if len(ok) < 2 or not names:
        return None, "fewer than two completed trials, or no hyperparameter differs between them"
    if importance is not None:
        rank = {n: i for i, n in enumerate(importance["hyperparameter"])}
        names.sort(key=lambda n: rank.get(n, len(rank)))
    left_out = names[PARALLEL_MAX_AXES:]
    names = names[:PARALLEL_MAX_AXES]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(min(MAX_FIG_WIDTH, max(7.0, 1.05 * (len(names) + 2))), 5))
    cols = [scaled(project.space[n], ok[n]) for n in names]
    s = ok["score"]
    cols.append((s - s.min()) / (s.max() - s.min()) if s.max() > s.min() else s * 0 + 0.5)
    data = np.column_stack(cols)
    cmap = plt.get_cmap("viridis" if project.direction == "max" else "viridis_r")
    norm = plt.Normalize(s.min(), s.max() if s.max() > s.min() else s.min() + 1e-9)
    b = budgets(project, ok)
    top_budget = b.max() if b is not None else None
    for row, score, budget in zip(data, s, b if b is not None else [None] * len(s)):
        # a score measured on a smaller Hyperband budget is drawn dashed: it is not comparable
        dashed = budget is not None and budget < top_budget
        ax.plot(range(len(cols)), row, color=cmap(norm(score)), alpha=0.8, marker="o", ms=3,
                ls="--" if dashed else "-")
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=str(project.objective))
    labels = []
    for n in names:
        hp = project.space[n]
        if is_numeric(hp, ok[n]):
            lo = hp.get("min") if hp.get("min") is not None else pd.to_numeric(ok[n]).min()
            hi = hp.get("max") if hp.get("max") is not None else pd.to_numeric(ok[n]).max()
            labels.append(f"{n}\n{tables.fmt(lo)}..{tables.fmt(hi)}")
        else:
            labels.append(f"{n}\n" + "|".join(tables.fmt(c) for c in categories(hp, ok[n]))[:24])
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels(labels + ["score"], fontsize=7, rotation=30 if len(names) > 6 else 0,
                       ha="right" if len(names) > 6 else "center")
    ax.set_ylabel("scaled value (0 = low / first choice)")
    ax.set_title(f"{project.name}: top {len(ok)} trials over the {len(names)} hyperparameters that differ",
                 fontsize=10)
    fig.tight_layout()
    note = "a gap: the trial did not use that hyperparameter (conditional)"
    if b is not None and b.nunique() > 1:
        note += f"; dashed: a score after fewer epochs than the largest budget ({tables.fmt(top_budget)})"
    if left_out:
        note += f"; {len(left_out)} more differ and are left out: {', '.join(left_out)}"
    return _save(fig, path), note


def plot_hyperband(project: Project, path: Path) -> Path:
    """Epochs per trial, and score against the epoch budget; the colour is the epoch budget, as in every
    panel of the page (:func:`budget_colours`), the marker the bracket."""
    plt = _plt()
    df = project.trials
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = budget_colours(project)
    for e, colour in colours.items():
        sub = df[df["epochs"] == e]
        ax1.bar(sub["order"] + 1, sub["epochs_run"], color=colour, label=f"{tables.fmt(e)}-epoch budget")
    brackets = sorted(df["bracket"].dropna().unique()) if "bracket" in df else []
    for i, b in enumerate(brackets):
        ok = df[(df["bracket"] == b) & df["trial_id"].isin(project.ranking)]
        ax2.scatter(ok["epochs"], ok["score"], c=[colours.get(e, BUDGET_COLOURS[0]) for e in ok["epochs"]],
                    marker="osD^v<>"[i % 7], s=24, alpha=0.8, edgecolors="k", linewidths=0.4)
        ax2.scatter([], [], color="0.5", marker="osD^v<>"[i % 7], s=24, label=f"bracket {int(b)}")
    ax1.set_xlabel("trial (start order, from 1)")
    ax1.set_ylabel("epochs trained in the trial")
    ax1.set_title("epochs per trial", fontsize=10)
    ax2.set_xlabel("epoch budget (tuner/epochs)")
    ax2.set_ylabel(str(project.objective))
    ax2.set_title("score by epoch budget (colour) and bracket (marker)", fontsize=10)
    for ax in (ax1, ax2):
        _integer_axis(ax.xaxis)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    _integer_axis(ax1.yaxis)
    fig.suptitle(f"{project.name}: Hyperband", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


# ----------------------------------------------------------------------------- importance

def plot_importance(project: Project, table: pd.DataFrame, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.3 * len(table) + 1.5)))
    t = table.iloc[::-1]
    ax.barh(t["hyperparameter"], t["importance"], xerr=t["std"], color=NEUTRAL_COLOUR)
    ax.set_xlabel("drop in R² when the hyperparameter is shuffled")
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(alpha=0.3, axis="x")
    ax.set_title(f"{project.name}: hyperparameter importance", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_heatmap(project: Project, table: pd.DataFrame | None, path: Path) -> Figure:
    """Mean score in each cell of the two most important hyperparameters (count of trials inside)."""
    if table is None or len(table) < 2:
        return None, "needs the importance ranking of at least two hyperparameters"
    ok = project.completed()
    a, b = list(table["hyperparameter"][:2])
    ia, la = bins(project.space[a], ok[a])
    ib, lb = bins(project.space[b], ok[b])
    grid = np.full((len(lb), len(la)), np.nan)
    counts = np.zeros_like(grid, dtype=int)
    for (i, j), sub in ok.groupby([ib, ia]):
        grid[int(i), int(j)] = sub["score"].mean()
        counts[int(i), int(j)] = len(sub)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(min(MAX_FIG_WIDTH, 2 + 1.3 * len(la)), 1.5 + 0.8 * len(lb)))
    image = ax.imshow(grid, cmap="viridis" if project.direction == "max" else "viridis_r", aspect="auto",
                      origin="lower")
    for i in range(len(lb)):
        for j in range(len(la)):
            if counts[i, j]:
                ax.text(j, i, f"{grid[i, j]:.3f}\nn={counts[i, j]}", ha="center", va="center", fontsize=7,
                        color="w" if np.nanmax(grid) - grid[i, j] > 0.5 * (np.nanmax(grid) - np.nanmin(grid)) else "k")
    ax.set_xticks(range(len(la)), la, rotation=30 if len(la) > 3 else 0, fontsize=7)
    ax.set_yticks(range(len(lb)), lb, fontsize=7)
    ax.set_xlabel(a)
    ax.set_ylabel(b)
    fig.colorbar(image, ax=ax, label=f"mean {project.objective}")
    ax.set_title(f"{project.name}: {a} x {b} (the two most important)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path), ("mean score of the completed trials in each cell; blank: no trial there; trials "
                              "that did not use a hyperparameter are left out")


# ----------------------------------------------------------------------------- accuracy against size

def _short_count(value: float, _pos=None) -> str:
    """50K, 1.2M: a parameter count as a tick label."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if value >= size:
            return f"{value / size:g}{unit}"
    return f"{value:g}"


def _count_axis(ax) -> None:
    """Log x axis of parameter counts, ticks at 1, 2 and 5 of each decade (labelled 50K, 1M)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(_short_count))
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_pareto(project: Project, table: pd.DataFrame, path: Path) -> Figure:
    """Score against parameter count (log x) of every completed trial with a count, the Pareto front
    (``table``: :func:`fashion_tuner.review.pareto.pareto_table`) as a step line through its points,
    each front point labelled with its trial id; Hyperband budgets in their own colours."""
    known = table[table["parameters"].notna() & table["score"].notna()]
    if known.empty:
        return None, ""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 5))
    frame = known[["trial_id", "parameters", "score"]].merge(project.trials.drop(columns=["score"]), on="trial_id",
                                                             how="left")
    for label, color, sub in _by_budget(project, frame):
        ax.scatter(sub["parameters"].astype(float), sub["score"], s=18, color=color, alpha=0.6, label=label)
    front = known[known["on_front"] == 1].sort_values(["parameters", "trial_id"], kind="stable")
    x, y = front["parameters"].astype(float).to_numpy(), front["score"].to_numpy()
    ax.step(x, y, where="post", color="k", lw=1.3, label=f"Pareto front ({len(front)} trials)")
    ax.scatter(x, y, s=40, facecolors="none", edgecolors="k", linewidths=1.2)
    for tid, xi, yi in zip(front["trial_id"], x, y):
        ax.annotate(str(tid), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    _count_axis(ax)
    ax.set_xlabel("parameters (weights; log scale)")
    ax.set_ylabel(f"{project.objective} ({'higher' if project.direction == 'max' else 'lower'} is better)")
    ax.set_title(f"{project.name}: {project.objective} against model size, {len(front)} of {len(known)} "
                 "trials on the front", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    note = ("on the front: no other trial has at most as many parameters and a score at least as good "
            "(strictly better in one); labels are trial ids")
    return _save(fig, path), note
