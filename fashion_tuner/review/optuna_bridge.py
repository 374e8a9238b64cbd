"""A Keras Tuner project's trials, mirrored into an Optuna storage so that optuna-dashboard shows them live.

Every search records its trials here as they end (``RUN/optuna.journal``, an Optuna JournalStorage file);
``review DIR --optuna STORAGE`` does the same for any Keras Tuner folder. Then
``.venv/bin/optuna-dashboard RUN/optuna.journal`` serves the history, parallel coordinates, importance,
contour and slice plots, refreshing while the search runs.

One study per project (named after the run), one Optuna trial per Keras Tuner trial that has ended:

- distributions from the Keras Tuner space (oracle.json, else the trials'): ``Int``/``Float`` ->
  ``IntDistribution``/``FloatDistribution`` (``log=True`` for log sampling; the step kept), ``Choice``,
  ``Boolean`` and ``Fixed`` -> ``CategoricalDistribution``; a conditional hyperparameter is a parameter of
  the trials where it is active only (Keras Tuner leaves it out of the others);
- the value: the trial's score (COMPLETE), none for a failed or invalid trial (FAIL) or a stopped one (PRUNED);
- intermediate values: the objective per epoch (``epochs.jsonl``, step = epoch counted from the start of
  training), else the steps trial.json keeps;
- user attributes: the Keras Tuner trial id, Hyperband's budget (``tuner/epochs``, ``tuner/initial_epoch``,
  bracket, round, the trial it continues), epochs run, the failure message.

Incremental and idempotent: a trial already recorded as it is now is not written again. A recorded trial
whose Keras Tuner file changed since (a failed trial retried by a resumed search) cannot be edited in
Optuna, so the study is then written again from scratch. Optuna is imported only here.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import math
import warnings
from pathlib import Path

from fashion_tuner import hints
from fashion_tuner.errors import UserError
from fashion_tuner.review.infer import HYPERBAND_KEYS
from fashion_tuner.review.project import Project, read_project

log = logging.getLogger(__name__)
JOURNAL_FILE = "optuna.journal"  # under a run folder
SOURCE_ATTR = "fashion_tuner:project"  # study user attribute: the Keras Tuner folder it mirrors
KT_ID_ATTR = "keras_tuner_trial_id"  # trial user attribute
FINGERPRINT_ATTR = "fashion_tuner:fingerprint"  # trial system attribute: what the trial was when recorded
ENDED = {"completed", "failed", "invalid", "stopped"}  # Keras Tuner statuses of trials that will not change


def dashboard_command(storage: str | Path) -> str:
    """``.venv/bin/optuna-dashboard STORAGE``: runnable as printed from the repository root."""
    return hints.tool_command("optuna-dashboard", str(storage))


def _storage(target: str | Path):
    """An Optuna storage: an RDB URL (``sqlite:///x.db``) as is, else a JournalStorage file at ``target``."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if "://" in str(target):
        return optuna.storages.RDBStorage(str(target))
    path = Path(target).expanduser()
    check_journal(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def check_journal(path: Path) -> None:
    """UserError unless ``path`` is absent, empty or an Optuna journal (JSON lines with an ``op_code``):
    any other file is the user's, and is never appended to."""
    if path.is_dir():
        raise UserError(f"--optuna {path}: a directory; name a journal file (e.g. {path / JOURNAL_FILE})")
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb") as fh:
        first = fh.readline(65536)
    try:
        ok = "op_code" in json.loads(first)
    except ValueError:
        ok = False
    if not ok:
        raise UserError(f"--optuna {path}: exists and is not an Optuna journal file; name a new file")


def distribution(hp: dict):
    """The Optuna distribution of one space entry (:func:`fashion_tuner.review.infer.hp_space`), or None
    when it has none (a hyperparameter without declared bounds or values)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    kind, log_scale = hp["type"], hp.get("sampling") == "log"
    if kind in ("Int", "Float") and (hp.get("min") is None or hp.get("max") is None):
        return None
    if kind == "Int":
        step = 1 if log_scale else int(hp.get("step") or 1)
        return IntDistribution(int(hp["min"]), int(hp["max"]), log=log_scale, step=step)
    if kind == "Float":
        step = None if log_scale or not hp.get("step") else float(hp["step"])
        return FloatDistribution(float(hp["min"]), float(hp["max"]), log=log_scale, step=step)
    if hp.get("values"):
        return CategoricalDistribution(list(hp["values"]))
    return None


def _params(project: Project, trial_id: str) -> tuple[dict, dict, dict]:
    """(params, distributions, values with no distribution) of one trial: the active hyperparameters."""
    params, dists, other = {}, {}, {}
    for name, value in project.values.get(trial_id, {}).items():
        if name in HYPERBAND_KEYS:
            continue
        dist = distribution(project.space[name]) if name in project.space else None
        try:
            internal = dist.to_internal_repr(value) if dist is not None else None
            ok = dist is not None and dist._contains(internal)  # noqa: SLF001 (the check create_trial makes)
        except (TypeError, ValueError):
            ok = False
        if ok:
            params[name], dists[name] = value, dist
        else:
            other[f"hp:{name}"] = value
    return params, dists, other


def _intermediate(project: Project, trial_id: str) -> dict[int, float]:
    """``{epoch: objective}``: epochs.jsonl's rows, else the steps trial.json keeps."""
    rows = project.curves.get(trial_id) or []
    values = {int(r["epoch"]): r[project.objective] for r in rows if isinstance(r.get(project.objective), (int, float))}
    if not values:
        values = {int(step): value for step, value in
                  (project.observations.get(trial_id) or {}).get(project.objective, [])}
    return {step: float(v) for step, v in values.items() if math.isfinite(v)}


def _when(seconds) -> datetime.datetime | None:
    return datetime.datetime.fromtimestamp(seconds) if seconds else None


def frozen_trials(project: Project) -> list:
    """The project's ended trials as Optuna FrozenTrials (numbered in start order), each with its
    fingerprint system attribute."""
    import optuna
    from optuna.trial import TrialState

    out = []
    for row in project.trials.itertuples(index=False):
        status = row.status
        if status not in ENDED:
            continue
        tid = str(row.trial_id)
        params, dists, other = _params(project, tid)
        score = float(row.score) if row.score == row.score else math.nan
        state = (TrialState.COMPLETE if status == "completed" and math.isfinite(score)
                 else TrialState.PRUNED if status == "stopped" else TrialState.FAIL)
        values = project.values.get(tid, {})
        attrs = {KT_ID_ATTR: tid, "status": status.upper(), **other,
                 **{key: values[key] for key in HYPERBAND_KEYS if key in values}}
        if row.epochs_run == row.epochs_run:  # not NaN
            attrs["epochs_run"] = int(row.epochs_run)
        if isinstance(row.message, str) and row.message and state != TrialState.COMPLETE:
            attrs["message"] = row.message[:500]
        intermediate = _intermediate(project, tid)
        fingerprint = json.dumps([state.name, score if state == TrialState.COMPLETE else None, params, intermediate, attrs],
                                 sort_keys=True, default=str)
        # Optuna requires a start; a plain Keras Tuner folder's first trial has no known one: its end then
        start, end, _ = project.times.get(tid, (None, None, False))
        end = end or project.mtime
        start = start or end
        out.append(optuna.trial.FrozenTrial(
            number=len(out), state=state, value=score if state == TrialState.COMPLETE else None,
            datetime_start=_when(start), datetime_complete=_when(end), params=params, distributions=dists,
            user_attrs=attrs, system_attrs={FINGERPRINT_ATTR: hashlib.sha1(fingerprint.encode()).hexdigest()},
            intermediate_values=intermediate, trial_id=len(out)))
    return out


def record(project_dir: str | Path, storage: str | Path | None = None) -> dict:
    """Mirror the project at ``project_dir`` into ``storage`` (default ``project_dir/optuna.journal``).

    Returns ``{"storage", "study", "added", "total", "rebuilt", "created"}``: trials added by this call,
    trials in the study, whether the study was written again from scratch, whether the storage file is new.
    """
    import optuna

    project = read_project(project_dir)
    target = storage if storage is not None else Path(project_dir) / JOURNAL_FILE
    created = "://" not in str(target) and not Path(target).expanduser().is_file()
    store = _storage(target)
    source = str(Path(project_dir).resolve())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:  # create_study(load_if_exists=True) would append a creation to the journal on every sync
        study = optuna.load_study(study_name=project.name, storage=store)
    except KeyError:
        study = _new_study(optuna, store, project, source)
    owner = study.user_attrs.get(SOURCE_ATTR)
    if owner is None:  # someone's own study of that name: never rewritten or added to
        raise UserError(f"--optuna {target}: it holds a study {project.name!r} that fashion_tuner did not write; "
                        "name another storage")
    if owner != source:
        if storage is not None:
            raise UserError(f"--optuna {target}: its study {project.name!r} mirrors another folder ({owner}); "
                            "name another storage")
        study.set_user_attr(SOURCE_ATTR, source)  # the run's own journal, in a run folder that was moved
    trials = frozen_trials(project)
    recorded = {t.user_attrs.get(KT_ID_ATTR): t.system_attrs.get(FINGERPRINT_ATTR) for t in study.get_trials(deepcopy=False)}
    now = {t.user_attrs[KT_ID_ATTR]: t.system_attrs[FINGERPRINT_ATTR] for t in trials}
    rebuilt = any(kid in now and now[kid] != fp for kid, fp in recorded.items()) or any(k not in now for k in recorded)
    if rebuilt:
        optuna.delete_study(study_name=project.name, storage=store)
        study, recorded = _new_study(optuna, store, project, source), {}
    added = [t for t in trials if t.user_attrs[KT_ID_ATTR] not in recorded]
    if added:
        study.add_trials(added)
    return {"storage": target, "study": project.name, "added": len(added), "total": len(recorded) + len(added),
            "rebuilt": rebuilt, "created": created}


def _new_study(optuna, store, project: Project, source: str):
    """An empty study for ``project`` in ``store``, marked as mirroring the folder ``source``."""
    study = optuna.create_study(storage=store, study_name=project.name,
                                direction="minimize" if project.direction == "min" else "maximize")
    study.set_user_attr(SOURCE_ATTR, source)
    with warnings.catch_warnings():  # experimental since Optuna 3.2; the dashboard labels the value with it
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([project.objective])
    return study


def record_quietly(run_dir: str | Path, announce: bool = True) -> dict | None:
    """:func:`record` into ``run_dir/optuna.journal`` for a running search; a failure is a warning (the
    journal is a view of the run: it must never fail the search). ``announce``: say how to view it when
    this call creates the file (the first trial's end), so the dashboard can be opened while the search runs."""
    try:
        result = record(run_dir)
    except Exception as exc:  # noqa: BLE001
        log.warning("optuna: trials not recorded in %s (%s); `%s` records them later", Path(run_dir) / JOURNAL_FILE,
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                    hints.command("review", str(run_dir), "--optuna", str(Path(run_dir) / JOURNAL_FILE)))
        return None
    if announce and result["created"]:
        log.info("optuna: trials recorded live in %s; view: %s", result["storage"], dashboard_command(result["storage"]))
    return result


def optuna_command(paths: list[str], storage: str) -> int:
    """``review PATH... --optuna STORAGE``: every Keras Tuner project under PATH as a study in STORAGE."""
    from fashion_tuner.review.project import find_projects

    found = [p for path in paths for p in find_projects(path)]
    if "://" not in storage:
        check_journal(Path(storage).expanduser())  # before anything is read or written
    for project_dir in found:
        result = record(project_dir, storage)
        print(f"optuna: study {result['study']!r}: {result['added']} trial(s) added, {result['total']} in all"
              f"{' (written again: a recorded trial had changed)' if result['rebuilt'] else ''} in {storage}")
    print(f"view: {dashboard_command(storage)}")
    return 0
