"""``retrain-best``: retrain the best trial (or the top K, or a distilled student) from scratch and
evaluate it once on the run's held-out test split; write ``RUN_DIR/report/``.

The search never saw the test images; this is the one place they are used. The report is built in
a temporary folder and swapped in at the end, under the run's lock, so a failed or interrupted
retrain leaves the previous report and the tuner's own files untouched.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from fashion_tuner import algorithms, backup, fsio, hints, locks, modelsize, report, runs, spaces
from fashion_tuner.errors import UserError
from fashion_tuner.retrain.config import BACKUP_DIR, MODEL_FILE, RetrainConfig, resolve_space, retrain_plan, say
from fashion_tuner.retrain import crossval, race
from fashion_tuner.retrain.distill import distill
from fashion_tuner.retrain.job import RetrainJob
from fashion_tuner.retrain.training import (class_weight, describe_learning_rate, member_extra, model_facts,
                                            model_metrics, provenance_now, save_history, save_model_files,
                                            timed_predict, train_member)


def retrain_best(run: str | None, results_dir: str = str(runs.DEFAULT_RESULTS_DIR), name: str | None = None,
                 epochs: int | None = None, top_k: int = 1, train_on: str | None = None, seed: int = 42,
                 distill_from: str | None = None, data_dir: str | None = None, space: str | None = None,
                 max_params: int | None = None, cv: int | None = None, tta: str = "none",
                 patience: int | None = None, race: str = race.DEFAULT_RACE) -> Path:
    """:func:`run_retrain` with its :class:`RetrainConfig` given as arguments; returns the report folder."""
    return run_retrain(RetrainConfig(run, results_dir, name, epochs, top_k, train_on, seed, distill_from, data_dir,
                                     space, max_params=max_params, cv=cv, tta=tta, patience=patience, race=race))


def run_retrain(cfg: RetrainConfig) -> Path:
    """Retrain, evaluate on the held-out test split, write ``RUN_DIR/report/``; returns that folder.

    ``epochs`` / ``train_on`` left as None take the run's ``retrain_defaults`` (a default-budget
    search of a built-in space: more epochs; cnn/transfer on every training image), else the
    search's max epochs and "train".
    """
    cfg.validate()
    _check_some_run_exists(cfg.run, cfg.results_dir)
    run_dir = runs.resolve_run(cfg.run, cfg.results_dir, cfg.name)
    with locks.RunLock(run_dir, "retrain-best"):  # one writer per run: not during its search or another retrain
        fsio.check_free_space(run_dir)  # as the search does: h5py crashes the process on a full disk
        try:
            return _retrain_locked(cfg, run_dir)
        except Exception as exc:
            if fsio.is_disk_full(exc) and not isinstance(exc, fsio.DiskFull):
                raise fsio.disk_full_error(run_dir) from None  # the run's disk, not the one holding '.'
            raise


def _chosen_trials(cfg: RetrainConfig, run_dir: Path, run: dict, trials: list[dict]) -> tuple[list[dict], list[dict]]:
    """``(chosen, candidates)``: the trials to retrain, and every completed trial they were chosen from (within
    --max-params), best first."""
    done = runs.ranked_trials(trials, run.get("direction", "max"))
    if not done:
        counts = {}
        for t in trials:
            counts[t.get("status")] = counts.get(t.get("status"), 0) + 1
        seen = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no trials"
        raise UserError(f"run {run_dir} has no completed trial ({seen}); run or resume the search first")
    done, why = algorithms.pick_order(run_dir, done)  # priorband: the defaults unless beaten beyond the noise
    if why:
        say(f"pick: {why}")
    done = _within_size(cfg.max_params, run_dir, done)
    if cfg.top_k > len(done):
        say(f"only {len(done)} completed trial(s): using {len(done)} instead of --top-k {cfg.top_k}")
    chosen = done[:cfg.top_k]
    say(f"run {run_dir}: {len(done)} completed trial(s); retraining "
        + ", ".join(f"trial {t['trial_id']} ({t['score']:.4f})" for t in chosen))
    return chosen, done


def _within_size(max_params: int | None, run_dir: Path, done: list[dict]) -> list[dict]:
    """The ranked completed trials whose model has at most ``max_params`` parameters (trial_*/model.json);
    UserError when none has. ``max_params`` None: ``done`` unchanged."""
    if max_params is None:
        return done
    sizes = {t["trial_id"]: modelsize.parameters(run_dir / f"trial_{t['trial_id']}") for t in done}
    unknown = [tid for tid, n in sizes.items() if n is None]
    if unknown:
        say(f"note: {len(unknown)} completed trial(s) have no recorded parameter count ({modelsize.MODEL_FILE}: "
            "searches before it was recorded); --max-params leaves them out")
    within = [t for t in done if sizes[t["trial_id"]] is not None and sizes[t["trial_id"]] <= max_params]
    if not within:
        known = [n for n in sizes.values() if n is not None]
        smallest = f"the smallest has {min(known):,}" if known else "none has a recorded size"
        raise UserError(f"no completed trial of run {run_dir} has at most {max_params:,} parameters ({smallest}); "
                        "raise --max-params, or search smaller models")
    best = within[0]
    say(f"--max-params {max_params:,}: {len(within)} of {len(done)} completed trial(s) qualify; the most accurate is "
        f"trial {best['trial_id']} ({sizes[best['trial_id']]:,} parameters, {best['score']:.4f})")
    return within


def _teacher(cfg: RetrainConfig, run_dir: Path) -> Path | None:
    if not cfg.distill_from:
        return None
    teacher_dir = runs.resolve_run(cfg.distill_from, cfg.results_dir)
    if teacher_dir.resolve() == run_dir.resolve():
        raise UserError("--distill-from names the run being retrained; the teacher must be another run "
                        "(retraining would replace the teacher's own report)")
    return teacher_dir


def _load_data(run: dict, run_dir: Path, data_dir: str | None, train_on: str, device_info: dict):
    """The run's data on its saved split, as the retrain uses it; returns ``(data dict, split)``."""
    dataset, split, (x_tr, y_tr), (x_val, y_val), (x_te, y_te) = runs.load_run_data(run, data_dir)
    if train_on == "full":
        # a search on a --subset chose the architecture; the final model gets every training image
        # of the pool (never a validation or held-out test image)
        pool = np.setdiff1d(np.arange(dataset.y_train.size),
                            split.val_idx if split.val_source == "train" else np.array([], dtype=np.int64))
        x_tr, y_tr = runs.to_model_input(dataset.x_train[pool]), dataset.y_train[pool]
    if train_on == "train+val":
        x_fit, y_fit, val = np.concatenate([x_tr, x_val]), np.concatenate([y_tr, y_val]), None
    else:
        x_fit, y_fit, val = x_tr, y_tr, (x_val, y_val)
    if train_on == "train" and len(y_tr) < dataset.y_train.size - (len(y_val) if split.val_source == "train" else 0):
        say(f"note: the search used a {len(y_tr)}-image subset; `--train-on full` retrains on every training image")
    say(f"train {len(y_fit)} images ({train_on}), validation {0 if val is None else len(val[1])}, "
        f"held-out test {len(y_te)} (evaluated once, after training)")
    names = dataset.class_names
    return {
        "dataset": dataset, "x_fit": x_fit, "y_fit": y_fit, "val": val, "x_te": x_te, "y_te": y_te,
        "class_names": names, "run_name": run.get("name", run_dir.name),
        "class_weight": class_weight(run, y_tr, names),
        "provenance": {
            "class_names": names,
            "test_indices_sha256": report.array_sha256(np.asarray(split.test_idx, dtype=np.int64)),
            "test_labels_sha256": report.array_sha256(np.asarray(y_te, dtype=np.int64)),
            "split_file": str(run_dir / runs.SPLIT_FILE),
            "backend": {"name": device_info["backend"], "version": device_info["backend_version"],
                        "policy": device_info["policy"]},
            "precision": device_info["precision"],
        },
    }, split


def _retrain_locked(cfg: RetrainConfig, run_dir: Path) -> Path:
    from fashion_tuner import devices

    run = runs.read_run(run_dir)
    trials = runs.read_trials(run_dir)
    chosen, candidates = _chosen_trials(cfg, run_dir, run, trials)
    space_name = resolve_space(run, cfg.space)
    teacher_dir = _teacher(cfg, run_dir)
    args = run.get("args", {})
    max_epochs, train_on, patience = retrain_plan(args, cfg.epochs, cfg.train_on, cfg.patience)
    device_info = devices.setup("none", args.get("mixed_precision"), bool(args.get("deterministic")))
    space = spaces.load_space(space_name)
    # after setup: reading the defaults from the stored space imports Keras Tuner (and the backend)
    rival, why = race.opponent(cfg.race, chosen[0], candidates, train_on=train_on, top_k=len(chosen),
                               distilling=teacher_dir is not None, budgeted=bool(cfg.time_budget), cv=bool(cfg.cv))
    if why:
        say(why)
    if rival is not None:
        say(f"the pick is not the space's defaults: both are retrained (the defaults: trial {rival['trial_id']}) "
            "and the one with the higher validation accuracy is kept and tested (--race off: the pick alone)")
    say("loading data and the saved split")
    data, split = _load_data(run, run_dir, cfg.data_dir, train_on, device_info)
    epoch_images = len(data["y_fit"]) + (0 if data["val"] is None else len(data["val"][1]))
    scored = len(data["y_te"]) * (2 if cfg.tta == "flip" else 1)  # test images scored after each fit
    raced = chosen + ([rival] if rival is not None else [])
    deadline, plan = _time_plan(cfg, run, run_dir, epoch_images, [t["trial_id"] for t in raced], max_epochs,
                                subset=train_on != "full" and bool(args.get("subset")), scored_images=scored)
    extend_to = None
    if plan:
        # one model, not distilled: a first epoch faster than the search's predicted may lengthen the plan
        if plan["models"] == 1 and teacher_dir is None and train_on != "train+val" and plan["planned_epochs"] < max_epochs:
            extend_to = max_epochs
        max_epochs = plan["planned_epochs"]
    # the images and epochs of this training (a cosine schedule decays over exactly these)
    context = spaces.DataContext.from_data(data.pop("dataset"), data["x_fit"], run_dir.parent,
                                           int(args.get("seed", 42)), args.get("weights"), max_epochs)
    _clean_stale(run_dir)
    tmp = run_dir / f".report.tmp-{os.getpid()}"
    tmp.mkdir()
    job = RetrainJob(space, run, data, tmp, max_epochs, cfg.epochs, train_on, cfg.seed, patience, split.test_idx,
                     deadline, plan, cfg.tta, extend_to)
    try:
        with spaces.using_data_context(context):
            folds = crossval.cross_validate(job, chosen[0], cfg.cv) if cfg.cv else None
            if teacher_dir is not None:
                summary, sections, notes, top_metrics = distill(job, chosen[0], teacher_dir)
            else:
                summary, sections, notes, top_metrics = _retrain_members(job, chosen, rival)
        if folds is not None:
            _add_cross_validation(folds, summary, notes, top_metrics)
        _write_pages(job, run_dir, trials, summary, sections, notes, top_metrics)
        final = run_dir / runs.REPORT_DIR
        swap_in(tmp, final)
        backup.discard(run_dir / BACKUP_DIR)  # the retrain is done: nothing left to resume
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _add_cross_validation(record: dict, summary: list[dict], notes: list[str], top_metrics: dict) -> None:
    """Put ``retrain-best --cv``'s record in metrics.json (``cross_validation``) and on the report: a note, and
    the mean ± sd in the test-results row of the model trained from the cross-validated trial."""
    top_metrics["cross_validation"] = record
    notes.append(crossval.note(record))
    label = f"trial {record['trial_id']}"
    for row in summary:
        if str(row.get("model", "")).endswith(label) or str(row.get("model", "")).endswith(f"({label})"):
            row[crossval.SUMMARY_HEADER] = crossval.describe(record)
            break


def _time_plan(cfg: RetrainConfig, run: dict, run_dir: Path, fit_images: int, trial_ids: list[str],
               max_epochs: int, subset: bool = False, scored_images: int = 0):
    """``(deadline, plan)`` for --time-budget (``(None, None)`` without one): the epochs each model gets so
    that every model of this retrain, its test scoring (``scored_images``) and the report fit the budget, from
    the search's own seconds per epoch of the chosen trials; the deadline is a :class:`budget.Deadline` whose
    reserve grows when the fits run slower than planned. ``fit_images``: the training plus validation images
    one retrain epoch passes through; ``subset``: it trains on the search's subset (``--train-on full`` would
    train on every image)."""
    if not cfg.time_budget:
        return None, None
    import time

    from fashion_tuner import budget

    started = cfg.started or time.time()
    models = 2 if cfg.distill_from else len(trial_ids)  # distillation trains the student twice; a race two models
    sizes = (run.get("split") or {}).get("sizes") or {}
    search_images = int(sizes.get("train") or 0) + int(sizes.get("val") or 0)
    per_epoch = budget.seconds_per_epoch(run_dir, search_images, fit_images, trial_ids)
    deadline = budget.Deadline(started + cfg.time_budget, after_images=scored_images, after_s=budget.FINISH_S,
                               image_s=per_epoch / fit_images if per_epoch and fit_images else None)
    reserve = deadline.at - deadline.fits_end()  # one model's scoring and report, at the expected pace
    left = deadline.at - time.time() - models * reserve
    planned = budget.plan_epochs(left / models, per_epoch, max_epochs)
    plan = {"budget_s": cfg.time_budget, "planned_epochs": planned, "models": models,
            "seconds_per_epoch_expected": None if per_epoch is None else round(per_epoch, 2)}
    say(f"time budget {budget.describe(cfg.time_budget)}: "
        + (f"~{per_epoch:.1f} s per epoch expected from the search's epochs, so {planned} epoch(s) per model "
           f"(of {max_epochs}); schedules are laid out for {planned}" if per_epoch else
           "the search logged no epoch times; fits stop at an epoch boundary when the budget runs out"))
    for advice in budget.plan_advice(max(0.0, left), per_epoch, planned, max_epochs, models, subset,
                                     spent_s=time.time() - started + models * reserve):
        say(f"note: {advice}")
    return deadline, plan


def _write_pages(job: RetrainJob, run_dir: Path, trials: list[dict], summary, sections, notes, top_metrics) -> None:
    runs.write_json(job.out / "metrics.json", top_metrics)
    leaderboard = report.leaderboard_rows(trials, job.run.get("direction", "max"))
    review_link = _write_review(run_dir, job.out)
    report.write_report_pages(job.out, title=f"fashion_tuner report: {job.run.get('name', run_dir.name)}",
                              run=dict(job.run), leaderboard=leaderboard, summary=summary, sections=sections,
                              notes=notes, review_link=review_link)


def _fit(job: RetrainJob, trial: dict, tag: str, label: str):
    """Train ``trial``'s configuration from scratch (a ``training.Fitted``)."""
    n_epochs = job.epochs_for(trial)
    how = (f"up to {n_epochs} epoch(s), EarlyStopping on val_accuracy" if job.train_on != "train+val"
           else f"{n_epochs} epoch(s) on train+val, no early stopping")
    say(f"{tag} training {label}: {how}")
    return train_member(job.space, trial, data=job.data, run=job.run, epochs=n_epochs, seed=job.seed,
                        patience=job.patience, label=f"trial {trial['trial_id']}", deadline=job.deadline,
                        backup_dir=job.backup_dir(trial, "member"), extend_to=job.extend_to)


def _evaluate(job: RetrainJob, trial: dict, fitted, sub: Path, title: str, tag: str) -> tuple[dict, np.ndarray]:
    """Score a fitted model once on the held-out test split and write its files in ``sub``; returns its
    metrics and test probabilities ``(n_test, C)``."""
    model, hp, history, wall, guarded = fitted
    label = f"trial {trial['trial_id']}"
    say(f"{tag} evaluating {label} on the held-out test split" + (" (flip TTA)" if job.tta == "flip" else ""))
    probs, seconds = timed_predict(model, job.data["x_te"], job.tta)
    save_model_files(sub, model, dict(hp.values), history, job.data["class_names"])
    extra = {**member_extra(trial, hp, job.train_on, job.seed, wall), **describe_learning_rate(model, history),
             "model": model_facts(model, sub / MODEL_FILE, job.data["x_te"], seconds, job.tta), "tta": job.tta,
             "patience": job.patience, **job.budget_record(history, guarded)}
    metrics = model_metrics(sub, title=title, history=history, probs=probs, data=job.data, extra=extra)
    lo, hi = metrics["test_accuracy_ci95"]
    say(f"{tag} {label}: test accuracy {metrics['test_accuracy']:.4f} (95% CI {lo:.4f}-{hi:.4f}), "
        f"{metrics['epochs_trained']} epochs, {wall:.1f} s")
    return metrics, probs


def _train_one(job: RetrainJob, trial: dict, i: int, k: int) -> tuple[dict, np.ndarray]:
    """Train and evaluate member ``i`` of ``k``; returns its metrics and test probabilities ``(n_test, C)``."""
    import keras

    label = f"trial {trial['trial_id']}"
    fitted = _fit(job, trial, f"[{i}/{k}]", label)
    title = label if k == 1 else f"model_{i} (trial {trial['trial_id']})"
    result = _evaluate(job, trial, fitted, job.out if k == 1 else job.out / f"model_{i}", title, f"[{i}/{k}]")
    del fitted
    keras.backend.clear_session()
    return result


def _race(job: RetrainJob, pick: dict, rival: dict):
    """Train the pick and the space's defaults, keep the one with the higher validation accuracy
    (:mod:`.race`) and evaluate only it; ``(summary, sections, notes, top)``."""
    import keras

    entrants = {"pick": pick, "defaults": rival}
    fits = {role: _fit(job, trial, f"[race {i}/2]", f"trial {trial['trial_id']} ({race.ROLES[role]})")
            for i, (role, trial) in enumerate(entrants.items(), start=1)}
    record = race.outcome({role: (entrants[role], fit.history, fit.wall_s) for role, fit in fits.items()},
                          0 if job.data["val"] is None else len(job.data["val"][1]))
    say(record["note"])
    winner, loser = entrants[record["winner"]], record["loser"]
    lost = fits.pop(loser)
    save_history(job.out / race.RACE_DIR / loser, dict(lost.hp.values), lost.history)
    label = f"trial {winner['trial_id']}"
    metrics, _ = _evaluate(job, winner, fits.pop(record["winner"]), job.out, label, "[race]")
    keras.backend.clear_session()
    metrics["race"] = {k: v for k, v in record.items() if k != "note"}
    sections = [{"name": f"Best trial ({label}, {race.ROLES[record['winner']]}, won the race)", "subdir": "",
                 "hyperparameters": metrics["hyperparameters"], "metrics": metrics}]
    note = (f"{record['note'][0].upper()}{record['note'][1:]}. The other's learning curve: "
            f"{race.RACE_DIR}/{loser}/history.csv.")
    return [report.summary_row(label, metrics)], sections, [note], metrics


def _retrain_members(job: RetrainJob, chosen: list[dict], rival: dict | None = None):
    """Retrain each chosen trial (and, for several, their ensemble), or race the one chosen against ``rival``, the
    space's defaults; ``(summary, sections, notes, top)``."""
    if rival is not None:
        return _race(job, chosen[0], rival)
    k = len(chosen)
    members, member_probs, sections = [], [], []
    for i, trial in enumerate(chosen, start=1):
        metrics, probs = _train_one(job, trial, i, k)
        members.append(metrics)
        member_probs.append(probs)
        label = f"trial {trial['trial_id']}"
        sections.append({"name": f"Best trial ({label})" if k == 1 else f"Member {i}: {label}",
                         "subdir": "" if k == 1 else f"model_{i}", "hyperparameters": metrics["hyperparameters"],
                         "metrics": metrics})
    if k == 1:
        return [report.summary_row(f"trial {chosen[0]['trial_id']}", members[0])], sections, [], members[0]
    return _ensemble(job, chosen, members, member_probs, sections)


def _ensemble(job: RetrainJob, chosen: list[dict], members: list[dict], member_probs: list, sections: list):
    k = len(chosen)
    say(f"evaluating the ensemble of {k} (average of softmax outputs)")
    compare = {f"model_{i} (trial {m['trial_id']})": np.asarray(m["confusion_matrix"])
               for i, m in enumerate(members, start=1)}
    sizes = {key: round(sum(m["model"][key] for m in members), 4)
             for key in ("parameters", "trainable_parameters", "size_mb", "ms_per_image_batched", "ms_per_image_single")}
    ens = model_metrics(job.out, title=f"ensemble of {k}", history={}, probs=np.mean(member_probs, axis=0),
                        data=job.data, compare=compare,
                        extra={"members": [f"model_{i}" for i in range(1, k + 1)],
                               "trial_ids": [t["trial_id"] for t in chosen], "train_on": job.train_on,
                               "seed": job.seed, "wall_s": round(sum(m["wall_s"] for m in members), 2),
                               "model": sizes})
    say(f"ensemble: test accuracy {ens['test_accuracy']:.4f} (best member "
        f"{max(m['test_accuracy'] for m in members):.4f})")
    summary = [report.summary_row(f"ensemble of {k}", ens)] + [
        report.summary_row(f"model_{i} (trial {m['trial_id']})", m) for i, m in enumerate(members, start=1)]
    sections.insert(0, {"name": f"Ensemble of the top {k} trials (averaged softmax)", "subdir": "",
                        "hyperparameters": None, "metrics": ens})
    top = {"ensemble": ens, "members": members, "class_names": job.data["class_names"],
           **provenance_now(job.data["provenance"])}
    return summary, sections, [], top


def _clean_stale(run_dir: Path) -> None:
    """Remove temporary report folders of killed retrains: under the run's lock no other writer is alive."""
    for path in Path(run_dir).glob(".report.*-*"):
        shutil.rmtree(path, ignore_errors=True)


def swap_in(tmp: Path, final: Path) -> None:
    """Replace ``final`` by ``tmp`` (both in one folder, so each rename is atomic)."""
    if final.exists():
        old = final.with_name(f".report.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def _write_review(run_dir: Path, report_dir: Path) -> str | None:
    """The search's review page in ``report_dir/review/``, so the report can link to a page of the same
    moment; returns the link relative to the report, or None when it cannot be made."""
    from fashion_tuner.review.page import write_review
    from fashion_tuner.review.project import read_project

    try:
        write_review(read_project(run_dir), report_dir / "review")
    except (UserError, OSError, ValueError) as exc:
        say(f"note: no review page in the report ({exc})")
        return None
    return "review/review.html"


def _check_some_run_exists(run: str | None, results_dir: str) -> None:
    """Before any search has run, say so and give the command that makes one (not "run not found")."""
    if run and (os.sep in run or Path(run).expanduser().exists()):
        return  # a path: resolve_run says whether it exists
    root = Path(results_dir).expanduser()
    if root.is_dir() and any((d / runs.RUN_JSON).is_file() for d in root.iterdir() if d.is_dir()):
        return
    raise UserError(f"there are no runs in {root} yet: run a search first, e.g. "
                    f"`{hints.command('search', '--space', 'mlp', '--results-dir', str(root))}` "
                    "(about 15 min on 2 CPU cores), then retrain-best its run")


def retrain_best_command(cfg: RetrainConfig) -> int:
    """CLI entry for ``retrain-best``; returns the exit status (0)."""
    out = run_retrain(cfg)
    metrics = json.loads((out / "metrics.json").read_text())
    head = metrics.get("ensemble", metrics)
    lo, hi = head["test_accuracy_ci95"]
    say(f"test accuracy {head['test_accuracy']:.4f} (95% CI {lo:.4f}-{hi:.4f}), macro F1 {head['macro_f1']:.4f} "
        f"on {head['n_test']} held-out test images")
    folds = metrics.get("cross_validation")
    if folds:
        say(f"K-fold cross-validation of trial {folds['trial_id']}: val accuracy {crossval.describe(folds)}")
    say(f"report: {out / 'report.html'}")
    return 0
