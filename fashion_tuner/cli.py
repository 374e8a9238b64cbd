"""Command line: parse, validate (before TensorFlow is imported), call the library, turn errors into messages."""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import re
import shlex
import signal
import sys
import time
import traceback

from fashion_tuner import hints, interrupts, logs
from fashion_tuner.errors import UserError

EXIT_USER_ERROR = 2
# TensorFlow keeps ~10 MB per trained model for the life of the process; a fresh process every 5
# trials bounds that well under 150 MB (README: memory) for a few seconds of start-up each
# (fashion_tuner.search.processes).
DEFAULT_TRIALS_PER_PROCESS = 5
BACKENDS = ("tensorflow", "jax", "torch")  # fashion_tuner.backend.BACKENDS (not imported: keep start-up light)
# Seeds: NumPy, Keras and scikit-learn take 0 .. 2**32 - 1, and trial k of a search is seeded with
# seed + k, so half that range leaves room for any number of trials.
MAX_SEED = 2 ** 31 - 1
_started = time.time()  # when this process started: a command's --time-budget counts from here


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument on one line (no usage dump)."""

    def error(self, message):
        message += did_you_mean(message)
        raise UserError(f"{message} (see `{hints.command(self.prog.split()[-1], '--help')}`)"
                        if " " in self.prog else f"{message} (see `{hints.command('--help')}`)")


def did_you_mean(message: str) -> str:
    """``"; did you mean 'search'?"`` for argparse's "invalid choice: 'serch' (choose from ...)", else ""."""
    match = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if not match:
        return ""
    choices = re.findall(r"'([^']*)'", match.group(2)) or [c.strip() for c in match.group(2).split(",")]
    close = difflib.get_close_matches(match.group(1), choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _number(convert, ok, expected: str):
    """An argparse type: ``convert`` the text, then require ``ok(value)``; the message says ``expected``."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value
    return parse


_positive_int = _number(int, lambda v: v > 0, "a positive whole number")
_nonneg_int = _number(int, lambda v: v >= 0, "a whole number >= 0")
_factor = _number(int, lambda v: v >= 2, "a whole number of 2 or more (the Hyperband factor)")
_fraction = _number(float, lambda v: 0.0 < v < 1.0, "a fraction between 0 and 1 (exclusive)")
_positive_float = _number(float, lambda v: v > 0, "a positive number")
_folds = _number(int, lambda v: v >= 2, "a whole number of 2 or more (K folds)")


def _duration(text: str) -> float:
    from fashion_tuner.budget import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
_seed = _number(int, lambda v: 0 <= v <= MAX_SEED, f"a whole number from 0 to {MAX_SEED}")


def _keep_checkpoints(text: str) -> int | None:
    """``all`` -> None (keep every checkpoint), else a whole number >= 0."""
    return None if text.strip().lower() == "all" else _number(int, lambda v: v >= 0, "a whole number >= 0 or 'all'")(text)


def _space(text: str) -> str:
    """A built-in space name in any case (``CNN`` -> ``cnn``); anything else is kept as typed (a path)."""
    from fashion_tuner.spaces import BUILTIN_SPACES

    return text.lower() if text.lower() in BUILTIN_SPACES else text


def build_parser() -> argparse.ArgumentParser:
    PY = hints.main_py()  # noqa: N806 (the examples name the interpreter that is running)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the full traceback on errors and debug messages")
    common.add_argument("--quiet", action="store_true", help="print warnings and errors only")
    # SUPPRESS: given before or after the command, neither parser's default overwrites the other's value
    common.add_argument("--backend", default=argparse.SUPPRESS, choices=BACKENDS,
                        help="Keras backend: tensorflow | jax | torch (default: $KERAS_BACKEND, else tensorflow)")
    fmt = argparse.RawDescriptionHelpFormatter
    parser = Parser(prog="main.py", description="Keras Tuner searches, honest splits, retraining and reports "
                    "for Fashion-MNIST classifiers.", parents=[common], formatter_class=fmt,
                    epilog=f"example:\n  {PY} search --space mlp --max-epochs 10\n"
                           f"  {PY} retrain-best results/mlp-priorband\n"
                           f"  {PY} review results/")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    _add_search_parser(sub, common, fmt, PY)
    _add_retrain_parser(sub, common, fmt, PY)
    _add_other_parsers(sub, common, fmt, PY)
    return parser


def _add_search_parser(sub, common, fmt, PY) -> None:  # noqa: N803
    """``search``: the budget, the data and the split (devices and distribution in :func:`_add_run_options`)."""
    from fashion_tuner import data
    from fashion_tuner.budget import SMALL_BUDGET_TRIALS
    from fashion_tuner.runs import DEFAULT_RESULTS_DIR
    from fashion_tuner.search import config as search_config
    from fashion_tuner.spaces import BUILTIN_SPACES

    s = sub.add_parser("search", parents=[common], formatter_class=fmt, help="run or resume a hyperparameter search",
                       usage="%(prog)s [--space SPACE] [--tuner TUNER] [OPTION ...]  (the options, by group, below)",
                       epilog=f"example:\n  {PY} search --space cnn --tuner bayesian --max-trials 20 "
                              "--subset 20000\n  (rerun the same command to resume; --overwrite starts over)")
    budget = s.add_argument_group("what to search, and its budget")
    data_opts = s.add_argument_group("data and split (the held-out test images never reach the search)")
    training = s.add_argument_group("training of each trial")  # also filled in _add_run_options
    run = s.add_argument_group("the run folder")
    budget.add_argument("--space", default="mlp", type=_space, help=f"{' | '.join(BUILTIN_SPACES)} | path/to/space.py "
                   "(default mlp)")
    budget.add_argument("--tuner", default=search_config.TUNERS[0], choices=search_config.TUNERS,
                        help=f"search algorithm (default {search_config.TUNERS[0]}: Hyperband drawing near the space's "
                             "defaults and the best so far; hyperband, bayesian, random: Keras Tuner's own)")
    budget.add_argument("--max-epochs", type=_positive_int, default=None,
                        help="epochs per trial at most (default per space: mlp 20, cnn 6, transfer 6, else 10)")
    budget.add_argument("--factor", type=_factor, default=3,
                        help="Hyperband reduction factor (priorband, hyperband; default 3)")
    budget.add_argument("--max-params", type=_positive_int, default=None, metavar="N",
                        help="reject, before it trains, any configuration whose model has more than N parameters "
                             "(priorband; counted in review)")
    budget.add_argument("--max-trials", type=_positive_int, default=20, help="trials for bayesian/random (default 20)")
    budget.add_argument("--executions-per-trial", type=_positive_int, default=1,
                   help="fits per trial, score averaged (default 1; 2+ lowers the noise, costs that many times more)")
    data_opts.add_argument("--subset", type=_positive_int, default=None,
                   help="stratified subsample of N training images (default: all for mlp, 10000 for cnn, 15000 for transfer)")
    run.add_argument("--results-dir", default=str(DEFAULT_RESULTS_DIR), help="output root (default results/)")
    run.add_argument("--name", default=None, help="run name (default <space>-<tuner>)")
    run.add_argument("--seed", type=_seed, default=42,
                   help=f"seed of the split, the tuner's draws and each trial's training (trial k: seed + k); "
                        f"0-{MAX_SEED} (default 42)")
    run.add_argument("--overwrite", action="store_true",
                   help="delete an existing run of that name and start over (only a run made by this tool; "
                        "files it did not write are kept)")
    data_opts.add_argument("--data-dir", default=None, help="folder holding the four IDX .gz files")
    data_opts.add_argument("--skip-md5", action="store_true", help="accept IDX files whose MD5 is not the published one")
    data_opts.add_argument("--dataset", default="fashion_mnist", choices=data.DATASETS,
                   help="fashion_mnist (default) or mnist (same IDX format, digits)")
    data_opts.add_argument("--val-source", default="test", choices=("test", "train"),
                   help="carve validation from the official test set (default, 60/40) or from the training set")
    data_opts.add_argument("--val-size", type=_fraction, default=None,
                   help="validation fraction of the source set (default 0.6 of test, 0.1 of train)")
    training.add_argument("--batch-size", type=_positive_int, default=128,
                   help="batch size when the space does not search it (default 128)")
    training.add_argument("--patience", type=_positive_int, default=3, help="EarlyStopping patience in epochs (default 3)")
    data_opts.add_argument("--class-weight", default=None, help="none | balanced | FILE.json ({\"Shirt\": 2.0, ...})")
    data_opts.add_argument("--cv", type=_folds, default=None, metavar="K",
                   help="score each trial by K-fold cross-validation: the mean best val_accuracy over K stratified "
                        "folds of the pooled train + validation images (K times the cost; docs/cv.md)")
    budget.add_argument("--max-failures", type=_positive_int, default=5,
                   help="stop after this many consecutive failed trials (default 5)")
    budget.add_argument("--trial-timeout", type=_positive_float, default=None, help="fail a trial after this many seconds (default: none; cnn and transfer 300)")
    budget.add_argument("--time-budget", type=_duration, default=None, metavar="DURATION",
                   help="stop the search within this wall time (90s, 15m, 1h; from the start of this command): "
                        "no trial starts that is not expected to finish, a trial that would overrun stops at an "
                        "epoch boundary; Hyperband repeats its sweep of brackets while time is left (resumable: "
                        "the same command continues)")
    budget.add_argument("--small-budget", choices=search_config.SMALL_BUDGET_CHOICES, default="defaults",
                   help="a --time-budget search with the default tuner whose budget fits fewer than %d trials like its "
                        "first (the space's defaults): defaults (default) stops after that one and says how much time "
                        "to add to retrain-best (measured: at 15 minutes on 2 CPU cores the minutes do more as retrain "
                        "epochs); search: search anyway" % SMALL_BUDGET_TRIALS)
    run.add_argument("--trials-per-process", type=_nonneg_int, default=DEFAULT_TRIALS_PER_PROCESS,
                   help="run the search in fresh processes of at most this many trials each, so memory that "
                        "TensorFlow keeps per trial is returned (default %d; 0: all in this process)"
                        % DEFAULT_TRIALS_PER_PROCESS)
    _add_run_options(s)


def _group(parser, title: str):
    """The argument group of ``parser`` titled ``title`` (made in :func:`_add_search_parser`)."""
    return next(g for g in parser._action_groups if g.title == title)


def _add_run_options(s) -> None:
    """``search``: how trials run (backbone weights, devices, precision, distribution, checkpoints, output)."""
    training, run = _group(s, "training of each trial"), _group(s, "the run folder")
    devices = s.add_argument_group("devices and distributed search")
    training.add_argument("--weights", default="auto",
                   help="transfer space backbones: auto (default: ImageNet weights when cached or downloadable, "
                        "else the in-domain autoencoder family only; one line says which) | imagenet | PATH | none")
    devices.add_argument("--strategy", default="auto", choices=("auto", "mirrored", "none"),
                   help="distribution strategy over GPUs (auto: mirrored when several GPUs)")
    from fashion_tuner.devices import DEFAULT_MIXED_PRECISION, MIXED_PRECISION

    training.add_argument("--mixed-precision", nargs="?", const="float16", default=DEFAULT_MIXED_PRECISION,
                          choices=MIXED_PRECISION,
                          help="train in mixed precision: float32 (none), float16 (the default when no value is "
                               "given; GPU only, float32 on a CPU), bfloat16 (also on a CPU) or auto (bfloat16 on "
                               "CPUs reporting avx512_bf16 or AMX under the tensorflow backend, float16 on CUDA GPUs "
                               "of compute capability >= 7.0, else float32; run.json says which and why); the "
                               "model's output layer must be float32 (under auto a space whose is not trains in "
                               "float32) (default: "
                               f"{DEFAULT_MIXED_PRECISION or 'float32'})")
    training.add_argument("--jit", default="auto", choices=("auto", "on", "off"),
                   help="XLA jit_compile: auto = Keras' rule (on for one GPU, off on CPU/under a strategy)")
    training.add_argument("--input-pipeline", default="auto", choices=("auto", "tfdata", "arrays"),
                   help="feed fits from tf.data or plain in-memory arrays (auto: the measured faster one; "
                        "arrays until tf.data measures faster)")
    devices.add_argument("--role", default=None, choices=("chief", "worker"),
                   help="distributed search: the chief serves the oracle, workers run trials "
                        "(same arguments and results directory)")
    devices.add_argument("--oracle-address", default=None, metavar="HOST:PORT",
                   help="where the chief listens / workers connect (unauthenticated gRPC: trusted networks only)")
    devices.add_argument("--worker-id", default=None, metavar="ID",
                   help="a stable worker id (default: the process id); rerun a dead worker with the same id "
                        "to take back its unfinished trial")
    run.add_argument("--keep-checkpoints", type=_keep_checkpoints, default=1, metavar="K|all",
                   help="keep the checkpoints of the K best trials (default 1) and those a resume or a Hyperband "
                        "round may still load; delete the others after each trial. all: keep every one")
    run.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=True,
                   help="write RUN/tensorboard, the trials as a TensorBoard HParams logdir, each time a search "
                        "process ends (finished, stopped, interrupted; default on: under a second for a small "
                        f"search); view with {hints.tool('tensorboard')} --logdir RUN/tensorboard")
    training.add_argument("--deterministic", action="store_true", help="TensorFlow op determinism (slower)")
    training.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2), help="Keras fit verbosity per trial")


def _add_retrain_parser(sub, common, fmt, PY) -> None:  # noqa: N803
    from fashion_tuner.runs import DEFAULT_RESULTS_DIR
    from fashion_tuner.tta import TTA_CHOICES

    r = sub.add_parser("retrain-best", parents=[common], formatter_class=fmt,
                       help="retrain the best trial (or top K), evaluate once on the held-out test set, write a report",
                       epilog=f"example:\n  {PY} retrain-best results/cnn-priorband --top-k 3")
    r.add_argument("run", nargs="?", help="run directory (or run name under --results-dir)")
    r.add_argument("--results-dir", default=str(DEFAULT_RESULTS_DIR), help="where runs live (default results/)")
    r.add_argument("--name", default=None, help="run name under --results-dir (instead of RUN)")
    r.add_argument("--epochs", type=_positive_int, default=None,
                   help="epochs at most (default: the search's max; mlp 50, cnn 30 and transfer 20 after a default search)")
    r.add_argument("--patience", type=_positive_int, default=None,
                   help="EarlyStopping patience in epochs (default: the search's; 5 after a default search; "
                        "--patience equal to --epochs runs the whole learning-rate schedule)")
    r.add_argument("--top-k", type=_positive_int, default=1,
                   help="retrain the K best trials and report their ensemble too (default 1; costs K retrainings)")
    r.add_argument("--train-on", default=None, choices=("train", "train+val", "full"),
                   help="train: the run's training images (default); full: the whole training set even when "
                        "the search used --subset (default after a default cnn/transfer search); train+val: "
                        "add the validation images, fixed epoch count")
    r.add_argument("--seed", type=_seed, default=42,
                   help=f"seed of the retraining (weights, shuffling, augmentation), 0-{MAX_SEED} (default 42)")
    r.add_argument("--space", default=None, metavar="PATH",
                   help="for a run searched with --space PATH: the space file to run. Code named in a run "
                        "directory is never run unless you name it here (docs/design.md: Safe loading)")
    r.add_argument("--time-budget", type=_duration, default=None, metavar="DURATION",
                   help="retrain within this wall time (90s, 15m, 1h): epochs are sized to it from the search's "
                        "own epoch times (schedules laid out for them) and a fit that would overrun stops at an "
                        "epoch boundary")
    r.add_argument("--max-params", type=_positive_int, default=None, metavar="N",
                   help="retrain the most accurate trial(s) whose model has at most N parameters "
                        "(recorded per trial in trial_*/model.json)")
    r.add_argument("--cv", type=_folds, default=None, metavar="K",
                   help="also cross-validate the best configuration on K stratified folds of the images the final "
                        "model trains on (--train-on) and report the mean ± sd beside the test accuracy (K more trainings; "
                        "the test set is still evaluated once, by the final model)")
    r.add_argument("--tta", default="none", choices=TTA_CHOICES,
                   help="score the test images as they are (none, default) or as the mean of each image and its "
                        "mirror (flip: one more forward pass; recorded in metrics.json, and predict does the same)")
    r.add_argument("--race", default="auto", choices=("auto", "on", "off"),
                   help="when the search's pick is not the space's defaults, retrain both and keep (and test) the one "
                        "with the higher validation accuracy: short search trials favour what learns fast over what "
                        "regularises (auto, default: one model, a validation split, no --time-budget or --cv; on: "
                        "also then, half the budget each; off: the pick alone)")
    r.add_argument("--distill-from", default=None, help="teacher run directory for knowledge distillation")
    r.add_argument("--data-dir", default=None,
                   help="folder holding the IDX files (default: where the search read them)")


def _add_other_parsers(sub, common, fmt, PY) -> None:  # noqa: N803
    """``predict``, ``review``, ``list`` and ``compare``."""
    from fashion_tuner.runs import DEFAULT_RESULTS_DIR

    p = sub.add_parser("predict", parents=[common], formatter_class=fmt, help="classify images with a saved model",
                       epilog=f"example:\n  {PY} predict --model results/mlp-priorband/report/best_model.keras shoe.png")
    p.add_argument("--model", required=True, help="a .keras file written by retrain-best")
    p.add_argument("images", nargs="+", help="PNG/JPG or .npy images")
    p.add_argument("--top", type=_positive_int, default=3, help="classes shown per image, most likely first (default 3)")

    v = sub.add_parser("review", parents=[common], formatter_class=fmt,
                       help="summarise and plot any Keras Tuner results directory",
                       epilog=f"example:\n  {PY} review results/cnn-priorband --top 10")
    v.add_argument("paths", nargs="+", metavar="PATH",
                   help="a Keras Tuner project directory (holds oracle.json), a folder holding several, or a "
                        "run name under --results-dir")
    v.add_argument("--results-dir", default=str(DEFAULT_RESULTS_DIR),
                   help="where run names are looked up (default results/)")
    v.add_argument("--out", default=None, help="output folder (default: each project's own review/ folder)")
    v.add_argument("--top", type=_positive_int, default=10, help="trials in the leaderboard (default 10)")
    v.add_argument("--tensorboard", default=None, metavar="OUT",
                   help="instead of the HTML review, write the project as a TensorBoard HParams logdir in OUT "
                        f"(a new or empty folder, or one this wrote before); view with {hints.tool('tensorboard')} "
                        "--logdir OUT")
    v.add_argument("--optuna", default=None, metavar="STORAGE",
                   help="instead of the HTML review, record the trials in an Optuna storage: a journal file "
                        "(e.g. OUT/optuna.journal; new, or one this wrote before) or a URL such as sqlite:///x.db; "
                        "again later adds only the new trials; view with "
                        f"{hints.tool('optuna-dashboard')} STORAGE (a search records RUN/optuna.journal itself)")

    ls = sub.add_parser("list", parents=[common], formatter_class=fmt, help="one line per run",
                        epilog=f"example:\n  {PY} list --results-dir results")
    ls.add_argument("--results-dir", default=str(DEFAULT_RESULTS_DIR), help="where runs live (default results/)")

    c = sub.add_parser("compare", parents=[common], formatter_class=fmt, help="runs side by side",
                       epilog=f"example:\n  {PY} compare mlp-priorband cnn-priorband")
    c.add_argument("runs", nargs="+", metavar="RUN", help="run names under --results-dir, or run directories")
    c.add_argument("--results-dir", default=str(DEFAULT_RESULTS_DIR), help="where runs live (default results/)")
    c.add_argument("--out", default=None,
                   help="also write compare.csv and an overlaid optimisation-history plot into this folder "
                        "(default: print the table only)")


def _search(args) -> int:
    from fashion_tuner import runs, spaces
    from fashion_tuner.distributed import resolve_role
    from fashion_tuner.search import SearchConfig, apply_space_defaults, processes

    spaces.check_space_name(args.space)
    resolve_role(args.role, args.oracle_address, args.worker_id)  # validates before TensorFlow loads
    cfg = SearchConfig(**{k: v for k, v in vars(args).items() if k not in ("command", "argv", "quiet")})
    apply_space_defaults(cfg)
    runs.run_dir_for(cfg.results_dir, cfg.run_name)  # validates before TensorFlow loads
    cfg.command = [*hints.main_py().split(), *args.argv]
    child = processes.SEARCH_PARENT_ENV in os.environ
    if cfg.trials_per_process and cfg.role is None and not child:
        from fashion_tuner.locks import RunLock

        run_dir = runs.run_dir_for(cfg.results_dir, cfg.run_name)
        with RunLock(run_dir, "search") as lock:  # held here for every child process, shared with them
            return processes.run_in_fresh_processes(args.argv, lock, run_dir, _started)
    if child:
        processes.exit_with_parent(int(os.environ[processes.SEARCH_PARENT_ENV]))
    else:
        cfg.trials_per_process = 0
    from fashion_tuner.search import SEARCH_STARTED_ENV, TrialBatchDone, run_search

    own_clock = SEARCH_STARTED_ENV not in os.environ
    if own_clock:  # --time-budget and elapsed count from the start of this command
        os.environ[SEARCH_STARTED_ENV] = repr(_started)
    try:
        run_search(cfg)
    except TrialBatchDone:
        return processes.EXIT_MORE_TRIALS
    except KeyboardInterrupt:
        resume = processes.resuming(cfg.command)
        print(f"\ninterrupted ({signal.Signals(interrupts.stop_signal()).name}); completed trials are kept. "
              f"Resume with:\n  {shlex.join(resume)}", file=sys.stderr)
        return 128 + interrupts.stop_signal()
    finally:
        if own_clock:
            os.environ.pop(SEARCH_STARTED_ENV, None)
    return 0


def _retrain(args) -> int:
    from fashion_tuner.retrain import RetrainConfig, retrain_best_command

    return retrain_best_command(RetrainConfig(
        run=args.run, results_dir=args.results_dir, name=args.name, epochs=args.epochs, top_k=args.top_k,
        train_on=args.train_on, seed=args.seed, distill_from=args.distill_from, data_dir=args.data_dir,
        space=args.space, time_budget=args.time_budget, started=_started, max_params=args.max_params,
        cv=args.cv, tta=args.tta, patience=args.patience, race=args.race))


def _predict(args) -> int:
    from fashion_tuner.predict import predict_command

    return predict_command(model=args.model, images=args.images, top=args.top)


def _named(path: str, results_dir: str) -> str:
    """A review PATH, or the run of that name under --results-dir."""
    from pathlib import Path

    from fashion_tuner.review.commands import named_path

    return str(named_path(path, Path(results_dir).expanduser()))


def _review(args) -> int:
    from fashion_tuner.review import review_command

    if args.tensorboard is not None and args.optuna is not None:
        raise UserError("--tensorboard and --optuna each write one view; run review once for each")
    if args.optuna is not None:
        from fashion_tuner.review.optuna_bridge import optuna_command

        if args.out is not None:
            raise UserError("--optuna STORAGE writes the Optuna storage only; run review again with --out "
                            "(without --optuna) for the HTML review")
        return optuna_command([_named(p, args.results_dir) for p in args.paths], args.optuna)
    if args.tensorboard is not None:
        from fashion_tuner.review.tensorboard import tensorboard_command

        if args.out is not None:
            raise UserError("--tensorboard OUT writes the TensorBoard logdir only; run review again with --out "
                            "(without --tensorboard) for the HTML review")
        return tensorboard_command([_named(p, args.results_dir) for p in args.paths], args.tensorboard)
    return review_command(args.paths, out=args.out, top=args.top, results_dir=args.results_dir)


def _list(args) -> int:
    from fashion_tuner.review import list_command

    return list_command(args.results_dir)


def _compare(args) -> int:
    from fashion_tuner.review import compare_command

    return compare_command(args.runs, args.results_dir, out=args.out)


HANDLERS = {"search": _search, "retrain-best": _retrain, "predict": _predict, "review": _review,
            "list": _list, "compare": _compare}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    debug = "--debug" in argv
    logs.configure(logging.DEBUG if debug else logging.WARNING if "--quiet" in argv else logging.INFO)
    with interrupts.handled():  # SIGTERM behaves as Ctrl-C: the run is marked interrupted, resumable
        return _main(argv, debug)


def _main(argv: list[str], debug: bool) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.argv = list(argv)
        if not args.command:
            build_parser().print_help()
            return EXIT_USER_ERROR
        from fashion_tuner import backend

        # before any command imports Keras; search children inherit it through the environment
        args.backend = backend.select(getattr(args, "backend", None),
                                      require=args.command in ("search", "retrain-best", "predict"))
        with interrupts.converted():  # an error TensorFlow raised for a Ctrl-C is the Ctrl-C
            return HANDLERS[args.command](args)
    except UserError as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 128 + interrupts.stop_signal()
    except OSError as exc:
        from fashion_tuner.fsio import disk_full_error, is_disk_full

        if debug:
            traceback.print_exc()
        if is_disk_full(exc):
            print(f"error: {disk_full_error(exc.filename or '.')}", file=sys.stderr)
            return EXIT_USER_ERROR
        print(f"error: {exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''} (a file system error; "
              "rerun with --debug for the traceback)", file=sys.stderr)
        return 1
    except ImportError as exc:
        if debug:
            traceback.print_exc()
        message = hints.missing_requirement(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as exc:  # a bug: short message, traceback on request
        if debug:
            traceback.print_exc()
        print(f"error: internal error {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
              "(rerun with --debug for the traceback and report it)", file=sys.stderr)
        return 1
