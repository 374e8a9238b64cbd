"""``retrain-best``: retrain the best trial (or the top K, or a distilled student) from scratch and
evaluate it once on the run's held-out test split.

Layout of ``report/``:

- one model: ``best_model.keras``, ``class_names.json``, ``history.csv``,
  ``hyperparameters.json``, ``test_probabilities.npy`` ``(n_test, C)``, the figures,
  ``classification_report.{txt,csv}``, ``metrics.json``, ``report.html``, ``report.md``;
- ``--top-k K > 1``: the above per member in ``model_1..K/`` (best first); the top folder
  holds the ensemble's (average of the members' softmax outputs) figures, probabilities and
  a ``metrics.json`` with ``"ensemble"`` and ``"members"``;
- a race (``--race``, :mod:`.race`; when the search's pick is not the space's defaults): the top folder is
  the winner's, as for one model, plus ``race/<loser role>/`` with the other's ``history.csv`` and
  ``hyperparameters.json`` (never tested) and ``"race"`` in ``metrics.json``;
- ``--distill-from TEACHER_RUN``: the top folder is the distilled student; ``alone/`` is
  the same architecture trained without the teacher and ``teacher/`` the teacher's
  evaluation on this run's test split; ``metrics.json`` has ``"distillation"``.

Modules: :mod:`.config` (the arguments and the plan), :mod:`.job` (one resolved retrain),
:mod:`.training` (one member and its files), :mod:`.race` (the pick against the defaults), :mod:`.distill`
(distillation), :mod:`.command`.
"""

from fashion_tuner.retrain.command import retrain_best, retrain_best_command, run_retrain, swap_in
from fashion_tuner.retrain.config import RetrainConfig, resolve_space, retrain_plan, trial_epochs
from fashion_tuner.retrain.distill import (DISTILL_ALPHA, DISTILL_TEMPERATURE, distill_targets, distillation_loss,
                                           soften)

__all__ = ["retrain_best", "retrain_best_command", "run_retrain", "swap_in", "RetrainConfig", "resolve_space",
           "retrain_plan", "trial_epochs", "DISTILL_ALPHA", "DISTILL_TEMPERATURE", "distill_targets",
           "distillation_loss", "soften"]
