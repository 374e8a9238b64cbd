"""The search: a Keras Tuner tuner over a search space, on a saved stratified split.

``run_search(cfg)`` holds the run's lock, checks the run directory (new, overwrite, resume), loads
the data, makes (or reloads) the split, writes ``run.json``, builds the tuner whose project
directory *is* the run directory, and runs it on the training and validation arrays only: the
held-out test images never reach the tuner. What it says goes through ``logging`` (the CLI prints it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import math
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from fashion_tuner import (algorithms, backend, budget, checkpoints, cv, devices, distributed, fsio, hints, interrupts, kt_compat,
                           locks, runs, spaces, splits)
from fashion_tuner.budget import describe as describe_budget
from fashion_tuner import data as data_mod
from fashion_tuner.errors import UserError
from fashion_tuner.fitting import DIRECTION, OBJECTIVE, resolve_class_weight, standard_callbacks
from fashion_tuner.search.config import (RunPlan, SearchConfig, check_same_content, expected_trials, prepare_run_dir,
                                         sweeps_until_deadline, trial_budget)
from fashion_tuner.search.progress import Progress, SearchClock, budget_left, search_clock
from fashion_tuner.search.summary import SUMMARY_TOP, summarize
from fashion_tuner.search.tuner import (SamplerExhausted, SmallBudget, TimeBudgetSpent, TrialBatchDone, build_tuner,
                                        frozen_heap)

log = logging.getLogger(__name__)
# after a time-budgeted search whose pick is the space's defaults (issue 26: cnn_15m against cnn_15m_defaults)
KEPT_DEFAULTS_NOTE = ("note: the pick is the space's defaults: nothing beat them within this budget. At short budgets "
                      "the minutes do more as retrain epochs (the cnn space at 15 minutes on 2 CPU cores: "
                      "docs/benchmarks.md#search-against-the-defaults): give the retrain the time you have, e.g. "
                      "%s, and next time a shorter search")

# after a time-budgeted search that stopped after its defaults because the budget fits too few trials to search
SMALL_BUDGET_NOTE = ("note: the search stopped after trial 0000, the space's defaults: its time budget fits too few "
                     "trials like it to search, and searches that small were measured to lose to spending the minutes "
                     "on retrain epochs (the cnn space at 15 minutes on 2 CPU cores: "
                     "docs/benchmarks.md#search-against-the-defaults). Add the %s left to retrain-best's --time-budget "
                     "(%s for a 10-minute retrain); --small-budget search searches anyway")

# after a search whose pick is not the space's defaults (retrain-best --race, fashion_tuner/retrain/race.py)
RACE_NOTE = ("note: the pick is not the space's defaults: retrain-best trains both at its own fidelity and keeps the one "
             "with the higher validation accuracy (short trials favour what learns fast over what regularises; about "
             "twice the retrain's time; --race off retrains the pick alone)")


@dataclass
class SearchData:
    """What a search process loaded before tuning. Images ``(N, 28, 28, 1)`` float32 0-255, labels ``(N,)``."""

    dataset: data_mod.Dataset
    split: splits.Split
    train: tuple  # (x, y): the training images of the split; with --cv, the pooled images that are folded
    val: tuple | None  # (x, y): the validation images; None with --cv (each fold validates on its own part)
    class_weight: dict | None
    folds: cv.Folds | None = None  # --cv: the pool's fold assignment


def versions() -> dict:
    """Versions for run.json: the Keras backend and its framework's version (TensorFlow is not
    imported on the other backends), Keras, Keras Tuner, NumPy, Python and this package."""
    import keras
    import keras_tuner

    from fashion_tuner import __version__

    name = backend.current()
    return {"python": platform.python_version(), "backend": name, name: backend.version(name),
            "keras": keras.__version__, "keras_tuner": keras_tuner.__version__, "numpy": np.__version__,
            "fashion_tuner": __version__}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_search(cfg: SearchConfig) -> Path:
    """Run (or resume) a search; returns the run directory. Raises UserError on bad input.

    Holds the run's lock (:mod:`fashion_tuner.locks`) for its whole life, except as a distributed
    worker. Raises ``KeyboardInterrupt`` through after marking the run interrupted.
    """
    cv.check_k(cfg.cv)
    if cfg.max_params and not algorithms.module(cfg.tuner).CONSTRAINTS:
        raise UserError(f"--max-params rejects configurations before they train with --tuner {algorithms.DEFAULT} only; "
                        f"drop --tuner {cfg.tuner}, or filter afterwards with retrain-best RUN --max-params N")
    if cfg.backend:
        backend.select(cfg.backend)  # before Keras loads; UserError when it already runs on another
    role = distributed.resolve_role(cfg.role, cfg.oracle_address, cfg.worker_id)
    run_dir = runs.run_dir_for(cfg.results_dir, cfg.run_name)
    if role is not None and not role.is_chief:
        # the chief makes the split and run.json and holds the lock; a worker reads them (and never writes them)
        distributed.wait_for_chief(run_dir, role)
        plan = prepare_run_dir(dataclasses.replace(cfg, overwrite=False), check_files=False)
        return _search(cfg, role, plan)
    fsio.check_free_space(run_dir)
    with locks.RunLock(run_dir, "search"):
        plan = prepare_run_dir(cfg)
        if role is not None:
            distributed.check_port_free(role)
        return _search(cfg, role, plan)


def load_search_data(cfg: SearchConfig, plan: RunPlan) -> SearchData:
    """The data set, the split (new or the run's own) and the class weights; refuses other data on resume."""
    dataset = data_mod.load_dataset(cfg.dataset, cfg.data_dir, verify_md5=not cfg.skip_md5)
    if plan.previous:
        recorded = (plan.previous.get("data") or {}).get("md5") or {}
        changed = sorted(f for f in set(recorded) | set(dataset.md5) if recorded.get(f) != dataset.md5.get(f))
        if recorded and changed:
            raise UserError(f"the data in {dataset.source} is not the data run {cfg.run_name} was searched on "
                            f"({changed[0]}: MD5 {dataset.md5.get(changed[0])}, the run recorded "
                            f"{recorded.get(changed[0])}); pass --data-dir with the original files, or use another --name")
        runs.check_split_digest(plan.previous, plan.run_dir / runs.SPLIT_FILE)
        split = splits.load_split(plan.run_dir / runs.SPLIT_FILE)
    else:
        split = splits.make_split(dataset.y_train, dataset.y_test, val_source=cfg.val_source,
                                  val_size=cfg.val_size, subset=cfg.subset, seed=cfg.seed)
    (x_tr, y_tr), (x_val, y_val), _ = splits.apply_split(dataset.x_train, dataset.y_train,
                                                          dataset.x_test, dataset.y_test, split)
    if cfg.cv:
        folds = _search_folds(cfg, plan, dataset, split)
        x_pool, y_pool = cv.pool_arrays(folds, (x_tr, y_tr), (x_val, y_val), split)
        class_weight = resolve_class_weight(cfg.class_weight, y_pool, dataset.class_names)
        check_same_content(cfg, plan.previous, class_weight)
        return SearchData(dataset, split, (runs.to_model_input(x_pool), y_pool), None, class_weight, folds)
    class_weight = resolve_class_weight(cfg.class_weight, y_tr, dataset.class_names)
    check_same_content(cfg, plan.previous, class_weight)
    return SearchData(dataset, split, (runs.to_model_input(x_tr), y_tr), (runs.to_model_input(x_val), y_val),
                      class_weight)


def _search_folds(cfg: SearchConfig, plan: RunPlan, dataset, split: splits.Split) -> cv.Folds:
    """--cv: the run's saved folds on resume, else new ones over the pooled train + validation images."""
    path = plan.run_dir / cv.CV_FILE
    if plan.previous:
        if not path.is_file():
            raise UserError(f"run {cfg.run_name} was searched without --cv; leave out --cv {cfg.cv}, or use another "
                            "--name (--overwrite deletes it and starts over)")
        folds = cv.load_folds(path)  # another K was already refused with the other identity flags
        cv.check_folds(folds, split)
        return folds
    y_val_source = dataset.y_test if split.val_source == "test" else dataset.y_train
    return cv.make_folds(split, dataset.y_train, y_val_source, cfg.cv, cfg.seed, subset=cfg.subset)


def _apply_plan(plan: RunPlan) -> None:
    """Write what the plan decided: delete an overwritten run (only its own entries), make repairs."""
    if plan.overwrite is not None:
        delete, keep = plan.overwrite
        log.info("--overwrite: deleting run %s: %s%s", plan.run_dir, ", ".join(p.name for p in delete) or "nothing",
                 f"; keeping what fashion_tuner did not write: {', '.join(p.name for p in keep)}" if keep else "")
        runs.begin_overwrite(plan.run_dir, delete)  # a kill from here on: the same --overwrite finishes it
        for path in delete:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        runs.end_overwrite(plan.run_dir)
    for repair in plan.repairs:
        repair.apply()
        log.info("repaired: %s", repair.what)
    plan.run_dir.mkdir(parents=True, exist_ok=True)


def _new_manifest(cfg: SearchConfig, plan: RunPlan, data: SearchData, device_info: dict, role) -> dict:
    previous = plan.previous or {}
    args = {k: v for k, v in asdict(cfg).items() if k not in ("command", "debug")}
    if plan.previous:  # how retrain-best trains the winner was decided when the run started
        args["retrain_defaults"] = (previous.get("args") or {}).get("retrain_defaults")
    now = _now()
    split = data.split
    return {
        "name": plan.run_dir.name, "space": spaces.space_reference(cfg.space), "tuner": cfg.tuner,
        "space_sha256": spaces.space_digest(cfg.space),
        "objective": OBJECTIVE, "direction": DIRECTION, "args": args,
        "command": cfg.command or sys.argv, "versions": versions(),
        "data": {"dataset": data.dataset.name, "source": data.dataset.source, "data_dir": cfg.data_dir,
                 "md5": data.dataset.md5, "skip_md5": cfg.skip_md5},
        "split": {"val_source": split.val_source, "val_size": cfg.val_size, "subset": cfg.subset,
                  "seed": split.seed, "sizes": split.sizes(),
                  "sha256": runs.file_digest(plan.run_dir / runs.SPLIT_FILE)},
        "cv": ({"k": data.folds.k, "seed": data.folds.seed, "file": cv.CV_FILE, **data.folds.sizes(),
                "score": f"mean of the {data.folds.k} folds' best {OBJECTIVE}"} if data.folds else None),
        "class_weight": data.class_weight, "devices": device_info,
        "backend": {"name": device_info["backend"], "version": device_info["backend_version"]},
        "distributed": role.as_dict() if role else None,
        "max_consecutive_failed_trials": cfg.max_failures,
        "changes": list(previous.get("changes") or []) + [dict(c, at=now) for c in plan.changes],
        "started": previous.get("started", now), "resumed": now if plan.previous else None,
        "finished": None, "status": "running", "trials": {}, "best": None,
    }


def _banner(cfg: SearchConfig, plan: RunPlan, data: SearchData, role, finished: int) -> None:
    """The search's opening lines; ``finished``: trials the run had ended before this process."""
    total = expected_trials(cfg)
    sizes = data.split.sizes()
    sweeps = " a sweep; sweeps repeat while the time budget lasts" if sweeps_until_deadline(cfg) else ""
    budget = (f"max_epochs {cfg.max_epochs}, factor {cfg.factor} (~{total} trials{sweeps})"
              if algorithms.module(cfg.tuner).MULTI_FIDELITY else f"{cfg.max_trials} trials of up to {cfg.max_epochs} epochs")
    if plan.previous:
        budget += budget_left(cfg, plan.run_dir, finished)
        if plan.previous.get("status") == "finished" and not plan.changes:
            log.info("run %s already finished (%d trials): nothing left to run (a larger --max-trials extends a "
                     "random/Bayesian search, a --time-budget a Hyperband one; --overwrite starts over)",
                     plan.run_dir, finished)
            return
    log.info("%s %s search of space %s into %s", "Resuming" if plan.previous else "Starting", cfg.tuner, cfg.space,
             plan.run_dir)
    log.info("algorithm: %s", algorithms.module(cfg.tuner).SUMMARY)
    log.info("data: %s from %s; train %d, val %d (from %s), held-out test %d (not used by the search)",
             data.dataset.name, data.dataset.source, sizes["train"], sizes["val"], data.split.val_source, sizes["test"])
    if data.folds:
        pool = data.folds.sizes()
        log.info("--cv %d: each trial trains %d models, one per stratified fold of %d pooled train + validation "
                 "images (%d from train, %d from val; ~%d validate per fold), scored by the mean of the folds' best "
                 "%s; Hyperband trains each fold from scratch (no weight continuation)", data.folds.k,
                 data.folds.k, pool["pool"], pool["from_train"], pool["from_val"], pool["val_per_fold"][0], OBJECTIVE)
    if cfg.time_budget:
        budget += f"; time budget {describe_budget(cfg.time_budget)} (no trial starts that would not finish)"
    log.info("budget: %s; EarlyStopping(val_accuracy, patience %d); search stops after %d consecutive failed trials",
             budget, cfg.patience, cfg.max_failures)
    for change in plan.changes:
        log.info("changed on resume: %s %r -> %r (recorded in run.json)", change["arg"], change["from"], change["to"])
    if role is not None:
        log.info("chief: serving the oracle on %s (no authentication: trusted networks only); start workers with "
                 "the same arguments plus --role worker --oracle-address %s --worker-id N; this returns when the "
                 "budget is spent and every worker has finished", role.address, role.address)


def _search(cfg: SearchConfig, role, plan: RunPlan) -> Path:
    """Load the data and the space, set up the devices, then tune inside the space's data context."""
    data = load_search_data(cfg, plan)
    devices.import_tensorflow_quietly()
    kt_compat.install_atomic_json()
    space = spaces.load_space(cfg.space)  # imports keras; a broken space file fails before anything is written
    finished_before = runs.finished_trials(plan.run_dir) if plan.previous else 0
    clock = search_clock(finished_before)
    progress = Progress(trial_budget(cfg), finished_before, clock, cfg.time_budget)
    device_info = devices.setup(cfg.strategy, cfg.mixed_precision, cfg.deterministic, jit=cfg.jit,
                                input_pipeline=cfg.input_pipeline, announce=clock.batch == 0)
    context = spaces.DataContext.from_data(data.dataset, data.train[0], cfg.results_dir, cfg.seed, cfg.weights,
                                           cfg.max_epochs)
    with spaces.using_data_context(context):
        if role is not None and not role.is_chief:
            return _run_worker(cfg, role, space, plan.run_dir, data)
        return _tune(cfg, role, plan, space, data, device_info, progress)


def _tune(cfg: SearchConfig, role, plan: RunPlan, space, data: SearchData, device_info: dict,
          progress: Progress) -> Path:
    """Write the run's files, run the tuner, and record how it ended."""
    run_dir = plan.run_dir
    _apply_plan(plan)
    if not plan.previous:
        splits.save_split(run_dir / runs.SPLIT_FILE, data.split)
        if data.folds is not None:
            cv.save_folds(run_dir / cv.CV_FILE, data.folds)
    manifest = _new_manifest(cfg, plan, data, device_info, role)
    runs.write_json(run_dir / runs.RUN_JSON, manifest)
    if progress.clock.batch == 0:  # later child processes of one search command do not repeat the header
        _banner(cfg, plan, data, role, progress.done)
    try:
        _tune_and_report(cfg, role, run_dir, space, data, manifest, progress)
    finally:
        if cfg.tensorboard:
            write_tensorboard(run_dir)
        _record_optuna(run_dir)
    log.info("next: %s", hints.command("retrain-best", str(run_dir), *hints.space_args(cfg.space)))
    return run_dir


def _record_optuna(run_dir: Path) -> None:
    """The final sync of ``RUN/optuna.journal`` (each trial is recorded as it ends) and how to view it."""
    from fashion_tuner.review.optuna_bridge import dashboard_command, record_quietly

    result = record_quietly(run_dir, announce=False)
    if result is not None:
        log.info("optuna: %d trial(s) in %s; view: %s", result["total"], result["storage"],
                 dashboard_command(result["storage"]))


def write_tensorboard(run_dir: Path) -> None:
    """Regenerate ``RUN/tensorboard`` from the trial files (:mod:`fashion_tuner.review.tensorboard`); a
    failure is a warning, never the search's error."""
    from fashion_tuner.review.project import read_project
    from fashion_tuner.review.tensorboard import write_logdir

    out = run_dir / runs.TENSORBOARD_DIR
    try:
        result = write_logdir(read_project(run_dir), out)
    except Exception as exc:  # noqa: BLE001 (a logdir is a view of the run: it must not fail the search)
        log.warning("tensorboard: not written (%s); `%s` writes it later", str(exc).splitlines()[0] if str(exc)
                    else type(exc).__name__, hints.command("review", str(run_dir), "--tensorboard", str(out)))
        return
    log.info("tensorboard: %d trial(s) in %s (%.1f s); view: %s", result["sessions"], out,
             result["seconds"], hints.tool_command("tensorboard", "--logdir", str(out)))


def _tune_and_report(cfg: SearchConfig, role, run_dir: Path, space, data: SearchData, manifest: dict,
                     progress: Progress) -> Path:
    status, stop_error = "finished", None
    try:
        with interrupts.converted():  # an error TensorFlow raised for a Ctrl-C is the Ctrl-C
            _run_tuner(cfg, role, space, run_dir, data, progress)
    except TimeBudgetSpent:  # "stopped", not "finished": the same command resumes the rest of the budget
        status = "stopped"
        manifest["stop_reason"] = _budget_reason(cfg, run_dir)
    except SmallBudget as exc:  # "finished": rerun with a larger --time-budget or --small-budget search to search
        fits, first_s = exc.args
        manifest["stop_reason"] = (f"time budget {describe_budget(cfg.time_budget)} fits about {fits} trials like the "
                                   f"first (the space's defaults, {first_s:.0f} s), fewer than "
                                   f"{budget.SMALL_BUDGET_TRIALS}: stopped after it (--small-budget defaults)")
        manifest["small_budget"] = {"fits_trials": fits, "first_trial_s": round(first_s, 1),
                                    "threshold": budget.SMALL_BUDGET_TRIALS}
    except SamplerExhausted as exc:
        manifest["stop_reason"] = f"no new configuration could be drawn: {exc}"
    except TrialBatchDone:
        summary = summarize(run_dir)[1]
        manifest.update(trials=summary["counts"], best=summary["best"])  # still "running": the next process resumes
        runs.write_json(run_dir / runs.RUN_JSON, manifest)
        raise
    except KeyboardInterrupt:
        _finish(run_dir, manifest, "interrupted")
        raise
    except Exception as exc:
        if fsio.is_disk_full(exc):
            _finish_quietly(run_dir, manifest, "interrupted", "no space left on device")
            raise fsio.disk_full_error(run_dir) from None
        if not kt_compat.is_too_many_failures(exc):
            _finish_quietly(run_dir, manifest, "failed", f"{type(exc).__name__}: {exc}")
            raise
        status, stop_error = "failed", exc
    return _report(cfg, run_dir, manifest, status, stop_error, progress.clock)


def _budget_reason(cfg: SearchConfig, run_dir: Path) -> str:
    stopped = sorted(p.parent.name.removeprefix("trial_") for p in run_dir.glob(f"trial_*/{budget.BUDGET_STOP_FILE}"))
    return (f"time budget {describe_budget(cfg.time_budget)} spent: no further trial would have finished in time"
            + (f"; stopped early to keep to it: trial {', '.join(stopped)}" if stopped else ""))


def _run_tuner(cfg: SearchConfig, role, space, run_dir: Path, data: SearchData, progress: Progress) -> None:
    deadline = progress.clock.started + cfg.time_budget if cfg.time_budget else None
    with distributed.role_environment(role), frozen_heap():
        with contextlib.redirect_stdout(io.StringIO()):  # Keras Tuner's "Reloading Tuner from ...": our header says it
            tuner = build_tuner(cfg, space, run_dir, progress, strategy=devices.strategy_for(cfg.strategy),
                                deadline=deadline, folds=data.folds,
                                validation_images=len(data.val[1]) if data.val is not None else None)
        tuner.search(*data.train, validation_data=data.val, epochs=cfg.max_epochs, batch_size=cfg.batch_size,
                     class_weight=data.class_weight, callbacks=standard_callbacks(cfg.patience, cfg.trial_timeout),
                     verbose=cfg.verbose)
    exhausted = getattr(tuner.oracle, "exhausted", None)  # the sampler found no new configuration (priorband)
    if exhausted:
        raise SamplerExhausted(exhausted)


def _report(cfg: SearchConfig, run_dir: Path, manifest: dict, status: str, stop_error, clock: SearchClock) -> Path:
    """Mark the run finished (or failed), write best_hyperparameters.json and say the summary."""
    checkpoints.prune(run_dir, cfg.keep_checkpoints)  # a chief's trials ran elsewhere: prune here too
    table, summary = _finish(run_dir, manifest, status)
    failed = summary["failed"]
    if summary["best"] is None:
        if status == "stopped" and not failed:  # the budget ran out before a first trial could end
            raise UserError(f"time budget {describe_budget(cfg.time_budget)} spent before any trial finished "
                            f"({describe_budget(time.time() - clock.started)} since the command started, start-up "
                            f"and data loading included): give a larger --time-budget")
        reasons = sorted({r["reason"] for r in failed}) or [manifest.get("stop_reason") or "no trial ran"]
        raise UserError(f"every trial failed ({len(failed)}): " + " | ".join(reasons))
    fsio.atomic_write_text(run_dir / runs.BEST_HP_FILE, json.dumps(summary["best_hyperparameters"], indent=2) + "\n")
    log.info("\nTop %d trials (%d completed, %d failed) in %s:\n%s", SUMMARY_TOP,
             summary["counts"].get("COMPLETED", 0), len(failed), run_dir, table)
    for r in failed:
        log.info("trial %s failed: %s", r["trial_id"], r["reason"])
    log.info("%s %s %.4f (trial %s); hyperparameters in %s", "picked" if summary["best"].get("why") else "best",
             OBJECTIVE, summary["best"]["score"], summary["best"]["trial_id"], run_dir / runs.BEST_HP_FILE)
    if summary["best"].get("why"):
        log.info("pick: %s", summary["best"]["why"])
    if not summary["pick_is_defaults"]:
        log.info(RACE_NOTE)
    log.info("wall time of this search command: %s", describe_budget(time.time() - clock.started))
    log.info("%s (--keep-checkpoints %s)", checkpoints.describe(manifest["disk"]),
             "all" if cfg.keep_checkpoints is None else cfg.keep_checkpoints)
    if manifest.get("stop_reason"):
        log.info("stopped: %s", manifest["stop_reason"])
    if manifest.get("small_budget"):
        left = max(cfg.time_budget - (time.time() - clock.started), 0.0)
        log.info(SMALL_BUDGET_NOTE, describe_budget(left),
                 hints.command("retrain-best", str(run_dir), *hints.space_args(cfg.space), "--time-budget",
                               f"{math.ceil((600 + left) / 6) / 10:g}m"))
    elif cfg.time_budget and summary["pick_is_defaults"]:
        log.info(KEPT_DEFAULTS_NOTE, hints.command("retrain-best", str(run_dir), *hints.space_args(cfg.space),
                                                   "--time-budget", f"{math.ceil(cfg.time_budget)}s"))
    if stop_error is not None:
        raise UserError(f"search stopped after {cfg.max_failures} consecutive failed trials (--max-failures); "
                        "reasons: " + " | ".join(sorted({r['reason'] for r in failed})))
    return run_dir


class _WorkerProgress(Progress):
    def end(self, trial, oracle):
        # the chief scores the trial; this worker's copy has no score
        scored = oracle.get_trial(trial.trial_id)
        trial.score, trial.status = scored.score, scored.status
        super().end(trial, oracle)


def _run_worker(cfg: SearchConfig, role, space, run_dir: Path, data: SearchData) -> Path:
    """Run trials the chief hands out until it says stop; writes trial folders and tuner<ID>.json only."""
    log.info("worker %s: running trials from the chief at %s into %s", role.tuner_id, role.address, run_dir)
    progress = _WorkerProgress(None)
    try:
        _run_tuner(cfg, role, space, run_dir, data, progress)
    except RuntimeError as exc:
        if not kt_compat.is_too_many_failures(exc):
            raise
        raise UserError(f"worker {role.tuner_id} stopped after {cfg.max_failures} consecutive failed trials "
                        "(--max-failures); see the trial folders for the reasons") from None
    log.info("worker %s: done (%d trial(s) run here); the chief writes the summary", role.tuner_id, progress.done)
    return run_dir


def _finish(run_dir: Path, manifest: dict, status: str):
    table, summary = summarize(run_dir)
    manifest.update(status=status, finished=_now(), trials=summary["counts"], best=summary["best"],
                    disk=checkpoints.disk_usage(run_dir))
    runs.write_json(run_dir / runs.RUN_JSON, manifest)
    return table, summary


def _finish_quietly(run_dir: Path, manifest: dict, status: str, reason: str) -> None:
    """Mark the run stopped on the way out of an error; a second error here (a full disk) must not hide the first."""
    manifest["stop_reason"] = reason
    try:
        _finish(run_dir, manifest, status)
    except Exception:  # summarising failed too: record just the status, and let the original error show
        try:
            runs.mark_stopped(run_dir, status, reason)
        except Exception:
            pass
