"""Review Keras Tuner result directories: ``review``, ``list`` and ``compare``.

Works on any Keras Tuner project directory (``oracle.json`` + ``trial_*/trial.json``), written by
fashion_tuner or by a plain Keras Tuner script, by reading the JSON files directly: no model code,
no keras_tuner or TensorFlow import (the commands start in about a second).

- :mod:`.project`: the directory reader, returning a typed :class:`~.project.Project`;
  :mod:`.infer`: what Keras Tuner does not store (space, tuner, objective), inferred from what it does;
- :mod:`.scales`, :mod:`.plots`, :mod:`.importance`: the figures and which hyperparameters mattered;
- :mod:`.pareto`: the accuracy-against-size front (``pareto.csv``, ``pareto.png``) from trial_*/model.json;
- :mod:`.summary`, :mod:`.page`: the summary text, leaderboard and ``review.html``;
- :mod:`.commands`: the three commands (the only printing code);
- :mod:`.tensorboard`: a project as a TensorBoard HParams logdir (``review PATH --tensorboard OUT``, and
  ``search``'s ``RUN/tensorboard``); the one module here that imports TensorFlow, and only when it writes.
"""

from fashion_tuner.review.commands import compare_command, list_command, review_command, review_project
from fashion_tuner.review.project import Project, find_projects, load_project, read_project

__all__ = ["Project", "compare_command", "find_projects", "list_command", "load_project", "read_project",
           "review_command", "review_project"]
