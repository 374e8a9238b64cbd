"""A Keras Tuner project as a TensorBoard HParams logdir (``review PATH --tensorboard OUT``, ``search``).

Layout of ``OUT`` (``tensorboard --logdir OUT`` shows it under the HPARAMS tab):

- ``OUT/events.out.tfevents.*``: the experiment (``hp.hparams_config``): one HParam per hyperparameter,
  its domain from the space Keras Tuner declared (Int -> IntInterval, Float -> RealInterval, Choice/Boolean/
  Fixed -> Discrete), widened to every value the trials took; ``trial/status``; one Metric for ``trial/score``
  (the trial's objective score at its best step), then one per curve tag (``val_*`` first).
- ``OUT/trial_<id>/events.out.tfevents.*``: one session per readable trial: ``hp.hparams(values,
  trial_id=<id>)`` (a conditional hyperparameter a trial did not use is absent), the session's end with its
  status (completed -> SUCCESS, failed/invalid/stopped -> FAILURE, running -> RUNNING), and
  scalar curves: from ``epochs.jsonl`` (one point per epoch, step = epoch - 1) when the trial has one (a
  fashion_tuner search), else from trial.json's observations (plain Keras Tuner keeps the best step only).
- ``OUT/.fashion_tuner_tensorboard.json``: the marker listing the files written, so that a rerun replaces
  exactly those and nothing a user put there.

Validation (:func:`check_out`) needs no TensorFlow; :func:`write_logdir` imports it (``tf.summary``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from fashion_tuner import fsio, hints, rundir
from fashion_tuner.errors import UserError
from fashion_tuner.review.project import Project

log = logging.getLogger(__name__)
MARKER = ".fashion_tuner_tensorboard.json"
EVENTS_PREFIX = "events.out.tfevents."
STATUS_HPARAM = "trial/status"
SCORE_METRIC = "trial/score"
SESSION_PREFIX = "trial_"
CURVE_SKIP = {"epoch", "time", "event", "after_epoch"}  # epochs.jsonl keys that are not metrics
STATUSES = ["completed", "failed", "invalid", "stopped", "running", "idle"]  # Keras Tuner's, lower case
# hparams api_pb2.Status by trial status (UNKNOWN 0, SUCCESS 1, FAILURE 2, RUNNING 3: TensorBoard 2.21 has
# no ABORTED, so a stopped trial reads FAILURE and its trial/status hparam says "stopped")
STATUS_CODES = {"completed": 1, "failed": 2, "invalid": 2, "stopped": 2, "running": 3}


@dataclass
class Session:
    """One trial as a TensorBoard session. ``curves``: ``{tag: [(step, value), ...]}``, steps 0-based
    epochs; ``start``/``end``: Unix seconds or None; ``score``: the objective at ``best_step`` (NaN if none)."""

    trial_id: str
    hparams: dict
    status: str
    curves: dict[str, list[tuple[int, float]]]
    score: float
    best_step: int
    start: float | None = None
    end: float | None = None

    @property
    def run(self) -> str:
        return SESSION_PREFIX + self.trial_id


@dataclass
class Domain:
    """An HParam domain: ``kind`` "int" | "real" | "discrete" | None (no domain), ``values`` for discrete,
    ``low``/``high`` for intervals, ``as_text``: values are written as strings (mixed types)."""

    kind: str | None
    low: float | None = None
    high: float | None = None
    values: list = field(default_factory=list)
    as_text: bool = False


# ----------------------------------------------------------------------------- sessions and domains (no TF)

def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _curves(project: Project, trial_id: str) -> dict[str, list[tuple[int, float]]]:
    rows = project.curves.get(trial_id)
    if rows:
        tags = sorted({k for r in rows for k in r if k not in CURVE_SKIP})
        return {tag: [(int(r["epoch"]) - 1, float(r[tag])) for r in rows
                      if _is_number(r.get(tag)) and math.isfinite(r[tag])] for tag in tags}
    return {tag: [(s, v) for s, v in points if math.isfinite(v)]
            for tag, points in project.observations.get(trial_id, {}).items()}


def sessions(project: Project) -> list[Session]:
    """One :class:`Session` per readable trial of ``project``, in start order."""
    out = []
    for row in project.trials.itertuples(index=False):
        tid = str(row.trial_id)
        values = {k: v for k, v in project.values.get(tid, {}).items() if v is not None}
        values[STATUS_HPARAM] = row.status
        start, end, _ = project.times.get(tid, (None, None, False))
        best = 0 if row.best_step is None or (isinstance(row.best_step, float) and math.isnan(row.best_step)) \
            else int(row.best_step)
        out.append(Session(trial_id=tid, hparams=values, status=row.status, curves=_curves(project, tid),
                           score=float(row.score), best_step=best, start=start, end=end))
    return out


def domain(declared: dict | None, observed: list) -> Domain:
    """The domain of one hyperparameter from its declared space entry (``Project.space``) and the values
    the trials took (None: not used)."""
    declared = declared or {}
    kind = declared.get("type")
    listed = [v for v in (declared.get("values") or []) if v is not None]
    seen = [v for v in observed if v is not None]
    every = listed + seen
    bounds = [declared[k] for k in ("min", "max") if _is_number(declared.get(k))] if kind in ("Int", "Float") else []
    if every and all(isinstance(v, bool) for v in every):
        return Domain("discrete", values=[False, True])
    if len(bounds) == 2 and all(_is_number(v) for v in seen):
        low, high = min([*bounds, *seen]), max([*bounds, *seen])
        return Domain("int" if kind == "Int" and all(isinstance(v, int) for v in [*bounds, *seen]) else "real",
                      low=low, high=high)
    if every and all(_is_number(v) for v in every):
        integral = all(isinstance(v, int) for v in every)
        if kind in ("Choice", "Fixed"):
            return Domain("discrete", values=sorted({v if integral else float(v) for v in every}))
        return Domain("int" if integral else "real", low=min(every), high=max(every))
    if every and all(isinstance(v, str) for v in every):
        return Domain("discrete", values=sorted(set(every)))
    if every:  # mixed types (a Choice of numbers and text): written as text
        return Domain("discrete", values=sorted({str(v) for v in every}), as_text=True)
    return Domain(None)


def domains(project: Project, found: list[Session]) -> dict[str, Domain]:
    """``{hparam: Domain}``: the declared space first (its order), then Hyperband's ``tuner/*`` and any
    undeclared value, then ``trial/status``."""
    names = list(project.space) + sorted({k for s in found for k in s.hparams} - set(project.space) - {STATUS_HPARAM})
    out = {n: domain(project.space.get(n), [s.hparams.get(n) for s in found]) for n in names}
    out[STATUS_HPARAM] = Domain("discrete", values=sorted(set(STATUSES) | {s.status for s in found}))
    return out


def metric_tags(found: list[Session]) -> list[str]:
    """``trial/score``, then every curve tag of any session: validation ones (``val_*``) first, each part
    sorted (TensorBoard's table shows the metrics in this order)."""
    tags = sorted({t for s in found for t in s.curves})
    return [SCORE_METRIC] + [t for t in tags if t.startswith("val_")] + [t for t in tags if not t.startswith("val_")]


# ----------------------------------------------------------------------------- the output folder

def _read_marker(out: Path) -> dict | None:
    try:
        data = json.loads((out / MARKER).read_text())
        return data if isinstance(data, dict) and isinstance(data.get("files"), list) else None
    except (OSError, ValueError):
        return None


def check_out(out: Path) -> dict | None:
    """Refuse (UserError) an ``out`` that is a file or a non-empty folder this tool did not write; return
    its marker (None for a new or empty folder). Writes nothing."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--tensorboard {out} is a file; pass a new or empty folder (or one this command wrote)")
    if not out.exists() or not any(out.iterdir()):
        return None
    marker = _read_marker(out)
    if marker is None:
        shown = ", ".join(sorted(p.name for p in out.iterdir())[:3])
        raise UserError(f"--tensorboard {out} is not empty ({shown} ...) and was not written by this tool; "
                        "pass a new or empty folder: nothing in it is deleted")
    return marker


def _session_dirs(out: Path, marker: dict) -> list[Path]:
    """The marker's session folders that are plain names directly in ``out`` (the marker is untrusted: a
    name with a separator, '..' or a symlink out of ``out`` is ignored)."""
    names = marker.get("sessions") if isinstance(marker.get("sessions"), list) else []
    return [out / s for s in names if rundir.is_safe_component(s) and not (out / s).is_symlink()
            and rundir.is_inside(out, out / s)]


def _ours(out: Path, marker: dict) -> list[Path]:
    """The files a previous write left, by the marker: its list, and if that write did not finish, the
    event files at the top of ``out`` and in its session folders. An entry that is absolute, holds '..',
    is a symlink or resolves outside ``out`` is ignored, with a warning: only files inside ``out`` are ours."""
    files = []
    for f in marker.get("files", []):
        path = out / f if isinstance(f, str) and f and not Path(f).is_absolute() and ".." not in Path(f).parts else None
        if path is None or path.is_symlink() or not rundir.is_inside(out, path):
            log.warning("%s: ignoring %r in its file list (not a file inside %s); left in place", out / MARKER, f, out)
            continue
        files.append(path)
    if not marker.get("complete"):
        for folder in [out] + _session_dirs(out, marker):
            files += list(folder.glob(EVENTS_PREFIX + "*")) if folder.is_dir() else []
    return sorted({f for f in files if f.is_file() and not f.is_symlink()})  # once each, whatever the list repeats


def _clear(out: Path, marker: dict | None) -> None:
    """Delete the files of a previous write and the session folders they leave empty."""
    if marker is None:
        return
    for path in _ours(out, marker):
        path.unlink(missing_ok=True)
    for folder in _session_dirs(out, marker):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _write_marker(out: Path, project: Project, found: list[Session], files: list[str], complete: bool) -> None:
    fsio.atomic_write_text(out / MARKER, json.dumps(
        {"tool": "fashion_tuner", "project": str(project.path), "complete": complete,
         "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "sessions": [s.run for s in found], "files": files},
        indent=1) + "\n")


# ----------------------------------------------------------------------------- writing (TensorFlow)

def _import_quietly():
    """(tensorflow, hparams api, hparams summary), TensorFlow's C++ start-up lines on stderr silenced."""
    from fashion_tuner.backend import stderr_silenced

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with stderr_silenced():
        import tensorflow as tf
        from tensorboard.plugins.hparams import api as hp
        from tensorboard.plugins.hparams import summary

        tf.constant(0)  # the first op prints its own start-up line
    return tf, hp, summary


def _hparam(hp, name: str, dom: Domain):
    if dom.kind == "int":
        return hp.HParam(name, hp.IntInterval(int(dom.low), int(dom.high)))
    if dom.kind == "real":
        return hp.HParam(name, hp.RealInterval(float(dom.low), float(dom.high)))
    if dom.kind == "discrete":
        return hp.HParam(name, hp.Discrete(dom.values))
    return hp.HParam(name)


def _value(dom: Domain, value):
    """A trial's value as its domain's type (TensorBoard drops a session whose value does not fit)."""
    if dom.as_text:
        return str(value)
    if dom.kind == "real" and _is_number(value):
        return float(value)
    if dom.kind == "discrete" and _is_number(value) and dom.values and isinstance(dom.values[0], float):
        return float(value)
    return value


def _write_session(tf, hp, summary, out: Path, session: Session, doms: dict[str, Domain]) -> None:
    folder = out / rundir.safe_component(session.run, "TensorBoard run name (from a trial id)")
    rundir.inside(out, rundir.refuse_symlink(folder), "TensorBoard run folder")
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        hp.hparams({k: _value(doms[k], v) for k, v in session.hparams.items() if k in doms},
                   trial_id=session.trial_id, start_time_secs=session.start)
        for tag, points in session.curves.items():
            for step, value in points:
                tf.summary.scalar(tag, value, step=step)
        if math.isfinite(session.score):
            tf.summary.scalar(SCORE_METRIC, session.score, step=session.best_step)
        if session.status in STATUS_CODES:
            end = summary.session_end_pb(STATUS_CODES[session.status], end_time_secs=session.end)
            tf.summary.experimental.write_raw_pb(end.SerializeToString(), step=0)
    writer.close()


def write_logdir(project: Project, out: str | os.PathLike) -> dict:
    """Write ``project`` as an HParams logdir in ``out`` (see the module docstring), replacing only what an
    earlier call wrote there. Returns ``{"out", "sessions", "hparams", "metrics", "seconds"}``."""
    began = time.monotonic()
    out = Path(out)
    marker = check_out(out)
    found = sessions(project)
    doms = domains(project, found)
    tags = metric_tags(found)
    tf, hp, summary = _import_quietly()

    out.mkdir(parents=True, exist_ok=True)
    before = {p for p in out.rglob("*") if p.is_file()}
    _write_marker(out, project, found, [], complete=False)
    _clear(out, marker)
    before = {p for p in before if p.exists()}
    writer = tf.summary.create_file_writer(str(out))
    with writer.as_default():
        hp.hparams_config(hparams=[_hparam(hp, n, d) for n, d in doms.items()],
                          metrics=[hp.Metric(t, display_name=f"score ({project.objective})" if t == SCORE_METRIC
                                             else t) for t in tags])
    writer.close()
    for session in found:
        _write_session(tf, hp, summary, out, session, doms)
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*")
                     if p.is_file() and p not in before and p.name != MARKER)
    _write_marker(out, project, found, written, complete=True)
    return {"out": out, "sessions": len(found), "hparams": list(doms), "metrics": tags,
            "seconds": time.monotonic() - began}


def tensorboard_command(paths: list[str], out: str) -> int:
    """``review PATH --tensorboard OUT``: one Keras Tuner project as an HParams logdir in OUT."""
    from fashion_tuner.review.project import find_projects, load_project

    target = Path(out).expanduser()
    found = [p for path in paths for p in find_projects(path)]
    if len(found) != 1:
        raise UserError(f"--tensorboard writes one project per folder; {len(found)} found "
                        f"({', '.join(str(p) for p in found[:3])}{' ...' if len(found) > 3 else ''}): "
                        "pass one project directory")
    check_out(target)  # before TensorFlow loads (the project folder itself is refused here: not ours)
    result = write_logdir(load_project(found[0]), target)
    print(f"written: {result['sessions']} session(s), {len(result['hparams'])} hparam(s), "
          f"{len(result['metrics'])} metric(s) in {target} ({result['seconds']:.1f} s)")
    print(f"view: {hints.tool_command('tensorboard', '--logdir', str(target))}  (then the HPARAMS tab)")
    return 0
