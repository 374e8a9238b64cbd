"""The search engine, one job a module (as Keras Tuner's own ``engine/``):

- :mod:`.config`: the arguments of a search and the rules for rerunning a run;
- :mod:`.tuner`: our Keras Tuner tuner and the space adapter;
- :mod:`.progress`: what a running search says, on one clock;
- :mod:`.summary`: the trials as a ranked table;
- :mod:`.engine`: ``run_search``, the whole run;
- :mod:`.processes`: a search as a chain of fresh processes (the CLI's parent and its children).
"""

from fashion_tuner.search.config import (SearchConfig, apply_space_defaults, expected_trials, identity,
                                         prepare_run_dir, resume_changes, trial_budget)
from fashion_tuner.search.engine import run_search, versions
from fashion_tuner.search.progress import (SEARCH_BATCH_ENV, SEARCH_DONE_ENV, SEARCH_STARTED_ENV, Progress,
                                           failure_reason, trial_seconds)
from fashion_tuner.search.summary import summarize, top_table, trial_table
from fashion_tuner.search.tuner import TrialBatchDone, build_optimizer

__all__ = ["SearchConfig", "apply_space_defaults", "expected_trials", "identity", "prepare_run_dir",
           "resume_changes", "run_search", "versions", "SEARCH_BATCH_ENV", "SEARCH_DONE_ENV", "SEARCH_STARTED_ENV",
           "Progress", "failure_reason", "trial_seconds", "summarize", "top_table", "trial_table", "TrialBatchDone",
           "build_optimizer", "trial_budget"]
