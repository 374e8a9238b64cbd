"""Which hyperparameters mattered: permutation importance of a random forest over the completed trials."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from fashion_tuner.review.project import Project
from fashion_tuner.review.scales import budgets, scaled

log = logging.getLogger(__name__)
SEED = 0
MIN_TRIALS_FOR_IMPORTANCE = 8
FOREST_TREES = 100
PERMUTATION_REPEATS = 10


def hp_importance(project: Project) -> tuple[pd.DataFrame | None, str]:
    """Permutation importance of a random forest fitted on the completed trials (in-sample, seeded).

    Returns (DataFrame ``hyperparameter, importance, std`` sorted, or None; a note for the page).
    """
    ok = project.completed()
    names = [n for n, hp in project.space.items() if hp["type"] != "Fixed" and n in ok
             and ok[n].nunique(dropna=False) > 1]
    if len(ok) < MIN_TRIALS_FOR_IMPORTANCE:
        return None, (f"too few completed trials ({len(ok)} < {MIN_TRIALS_FOR_IMPORTANCE}) to say which "
                      "hyperparameters matter")
    if not names:
        return None, "no hyperparameter varies across the completed trials"
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance
    cols = []
    for n in names:
        x = scaled(project.space[n], ok[n]).astype(float)
        cols.append(x.fillna(-1.0).to_numpy())  # -1: hyperparameter inactive in that trial
    X, y = np.column_stack(cols), ok["score"].to_numpy(float)
    b = budgets(project, ok)
    if b is not None and b.nunique() > 1:  # the budget explains much of a Hyperband score: let the forest see it
        X = np.column_stack([X, b.fillna(0).to_numpy(float)])
    forest = RandomForestRegressor(n_estimators=FOREST_TREES, random_state=SEED, min_samples_leaf=2, n_jobs=1)
    forest.fit(X, y)
    result = permutation_importance(forest, X, y, n_repeats=PERMUTATION_REPEATS, random_state=SEED, n_jobs=1)
    k = len(names)
    table = pd.DataFrame({"hyperparameter": names, "importance": result.importances_mean[:k],
                          "std": result.importances_std[:k]}).sort_values("importance", ascending=False)
    note = (f"permutation importance of a random forest ({FOREST_TREES} trees, seed {SEED}) fitted on "
            f"{len(ok)} completed trials, measured in-sample: a ranking, not a causal measure"
            + ("; the Hyperband epoch budget is an input too, so a score's budget is not credited to a "
               "hyperparameter" if X.shape[1] > k else ""))
    return table.reset_index(drop=True), note


