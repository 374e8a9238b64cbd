"""Hyperparameter values as numbers: which are numeric, integer or log-sampled, their categories, and
their scaling to 0..1 or to a few bins (shared by the plots and the importance model; no matplotlib).

``hp`` is one entry of :attr:`fashion_tuner.review.project.Project.space`; ``values``/``col`` a column of
the project's trials DataFrame (NaN/None where a trial did not use the hyperparameter).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from fashion_tuner import tables
from fashion_tuner.review.project import Project

log = logging.getLogger(__name__)
HEATMAP_BINS = 5


def is_numeric(hp: dict, values: pd.Series) -> bool:
    if hp["type"] in ("Int", "Float"):
        return True
    if hp["type"] in ("Choice", "Boolean", "Fixed"):
        return False
    return pd.to_numeric(values.dropna(), errors="coerce").notna().all()


def is_int(hp: dict, values: pd.Series) -> bool:
    if hp["type"] == "Int":
        return True
    v = pd.to_numeric(values.dropna(), errors="coerce")
    return hp["type"] != "Float" and len(v) > 0 and bool((v == v.round()).all())


def categories(hp: dict, values: pd.Series) -> list:
    cats = list(hp.get("values") or [])
    cats += [v for v in pd.unique(values.dropna()) if v not in cats]
    return cats


def is_log(hp: dict) -> bool:
    return hp.get("sampling") in ("log", "reverse_log") and (hp.get("min") or 0) > 0


def used_names(project: Project, frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(tunable hyperparameters some row of ``frame`` set, those no row set)."""
    names = [n for n, hp in project.space.items() if hp["type"] != "Fixed"]
    used = [n for n in names if n in frame and frame[n].notna().any()]
    return used, [n for n in names if n not in used]


def scaled(hp: dict, col: pd.Series) -> pd.Series:
    """A hyperparameter column mapped to 0..1 (log scale where sampled so, choices by position)."""
    if is_numeric(hp, col):
        x = pd.to_numeric(col, errors="coerce").astype(float)
        lo = hp.get("min") if hp.get("min") is not None else x.min()
        hi = hp.get("max") if hp.get("max") is not None else x.max()
        if is_log(hp):
            x, lo, hi = np.log10(x), math.log10(lo), math.log10(hi)
        return (x - lo) / (hi - lo) if hi is not None and lo is not None and hi != lo else x * 0 + 0.5
    cats = categories(hp, col)
    index = {c: i for i, c in enumerate(cats)}
    return col.map(lambda v: index.get(v, np.nan) / max(len(cats) - 1, 1) if v is not None else np.nan)


def bins(hp: dict, col: pd.Series) -> tuple[pd.Series, list[str]]:
    """(bin index per row (NaN: unused), bin labels): categories as they are; numbers in up to
    HEATMAP_BINS equal-width bins of their (log) range, or their own values when there are few."""
    if not is_numeric(hp, col):
        cats = [c for c in categories(hp, col) if (col == c).any()]
        return col.map({c: i for i, c in enumerate(cats)}), [tables.fmt(c) for c in cats]
    x = pd.to_numeric(col, errors="coerce").astype(float)
    values = sorted(x.dropna().unique())
    if len(values) <= HEATMAP_BINS:
        return x.map({v: i for i, v in enumerate(values)}), [tables.fmt(v) for v in values]
    t = np.log10(x) if is_log(hp) else x
    edges = np.linspace(t.min(), t.max(), HEATMAP_BINS + 1)
    index = pd.Series(np.clip(np.digitize(t, edges[1:-1]), 0, HEATMAP_BINS - 1), index=x.index).where(x.notna())
    bounds = 10 ** edges if is_log(hp) else edges
    return index, [f"{_short(a)}-{_short(b)}" for a, b in zip(bounds[:-1], bounds[1:])]


def _short(v: float) -> str:
    """A bin edge to 2 significant digits (``0.00015``, ``2.6e-05``, ``130``)."""
    return f"{float(v):.2g}"


def budgets(project: Project, frame: pd.DataFrame) -> pd.Series | None:
    """The Hyperband epoch budget (``tuner/epochs``) of each row, or None when the project has none."""
    if "epochs" not in frame or frame["epochs"].isna().all():
        return None
    return pd.to_numeric(frame["epochs"], errors="coerce")
