"""How well a trial's low-fidelity score ranks configurations (issue 26, item 3).

    python -m benchmarks.fidelity --space cnn --seed 42 [--configs 20] [--subset 10000] [--low 2] [--mid 6] [--ref 10]

``--configs`` configurations of the space: the defaults, then alternately priorband's local draws around the
defaults and uniform draws (the mixture a search tries). Each is trained once for ``--mid`` epochs with its
schedule laid out over ``--mid`` (as a Hyperband trial of a ``--max-epochs MID`` search is), giving its
validation accuracy after ``--low`` and after ``--mid`` epochs, then once from scratch at the reference fidelity
(``--ref`` epochs, the ablation protocol: 10 on the 10,000-image subset). Prints one JSON line: every
configuration's three scores and, for low and mid, the Spearman rank correlation with the reference and a
95 % bootstrap interval (configurations resampled). A weak low-fidelity ranking means a search's pick at
that fidelity may be worse than the defaults (the winner's curse of a short rung). About
``configs x (mid + ref)`` epochs: 10 configurations took over 2 hours on 2 cores (2026-12-06, seed 21).
"""

from __future__ import annotations

import argparse
import random
import time

from benchmarks.common import emit
from benchmarks.search_value import _fit, _space_and_data

BOOTSTRAP = 2000


def draw_configurations(space_name: str, n: int, seed: int) -> list[tuple[str, dict]]:
    """``[(kind, values)]``: the defaults, then local (priorband's move around the defaults) and uniform draws."""
    import keras_tuner as kt

    from fashion_tuner import algorithms, spaces

    module = spaces.load_space(space_name)
    space = kt.HyperParameters()
    module.build_model(space)
    oracle = algorithms.module("priorband").build_oracle(algorithms.OracleSettings(objective="score", seed=seed))
    oracle.update_space(space)
    rng = random.Random(seed)
    defaults = oracle._defaults()
    out, seen = [("defaults", defaults)], {repr(sorted(defaults.items()))}
    while len(out) < n:
        kind = "local" if len(out) % 2 else "uniform"
        values = oracle._local(rng, defaults) if kind == "local" else oracle._uniform(rng)
        key = repr(sorted(values.items()))
        if key not in seen:
            seen.add(key)
            out.append((kind, values))
    return out


def spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def with_interval(a: list[float], b: list[float], seed: int) -> dict:
    """Spearman's rho of ``a`` against ``b`` and a 95 % bootstrap interval over the paired items."""
    rng = random.Random(seed)
    n = len(a)
    rhos = []
    for _ in range(BOOTSTRAP):
        idx = [rng.randrange(n) for _ in range(n)]
        x, y = [a[i] for i in idx], [b[i] for i in idx]
        if len(set(x)) > 1 and len(set(y)) > 1:
            rhos.append(spearman(x, y))
    rhos.sort()
    return {"rho": round(spearman(a, b), 3), "low": round(rhos[int(0.025 * len(rhos))], 3),
            "high": round(rhos[int(0.975 * len(rhos)) - 1], 3), "n": n}


def train(space_name: str, values: dict, epochs: int, args) -> list[float]:
    """Validation accuracy after each of ``epochs`` epochs of one fresh model (schedule over ``epochs``)."""
    import keras
    import keras_tuner as kt

    space, (x_tr, y_tr), (x_val, y_val) = _space_and_data(space_name, args.seed, args.subset, args.val_size, epochs,
                                                            args.data_dir, args.skip_md5)
    keras.backend.clear_session()
    keras.utils.set_random_seed(args.seed)
    hp = kt.HyperParameters()
    space.build_model(hp)
    hp.values.update(values)
    keras.backend.clear_session()
    keras.utils.set_random_seed(args.seed)
    model = space.build_model(hp)
    history = _fit(space, hp, model, x_tr, y_tr, epochs=epochs, validation_data=(x_val, y_val), verbose=0)
    return [float(v) for v in history.history["val_accuracy"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fidelity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="cnn")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--configs", type=int, default=20)
    parser.add_argument("--subset", type=int, default=10000)
    parser.add_argument("--val-size", type=float, default=None)
    parser.add_argument("--low", type=int, default=2)
    parser.add_argument("--mid", type=int, default=6)
    parser.add_argument("--ref", type=int, default=10)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--skip-md5", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    for i, (kind, values) in enumerate(draw_configurations(args.space, args.configs, args.seed)):
        started = time.perf_counter()
        curve = train(args.space, values, args.mid, args)
        reference = train(args.space, values, args.ref, args)[-1]
        rows.append({"kind": kind, "values": values, "low": curve[min(args.low, len(curve)) - 1], "mid": curve[-1],
                     "reference": reference, "seconds": round(time.perf_counter() - started, 1)})
        print(f"[fidelity] {i + 1}/{args.configs} {kind}: low {rows[-1]['low']:.4f} mid {rows[-1]['mid']:.4f} "
              f"reference {reference:.4f} ({rows[-1]['seconds']:.0f} s)", flush=True)
    emit(summarize(rows, vars(args)))
    return 0


def summarize(rows: list[dict], settings: dict) -> dict:
    """The figure of one seed: ``rows`` (``{"kind", "low", "mid", "reference", ...}``, the defaults first), the
    Spearman of the low and mid scores against the reference, the defaults' rank at the reference, and what a
    pick at each fidelity would have gained: the configuration with the best low (mid) score, its reference
    minus the defaults' reference, pp (negative: picking at that fidelity lost against keeping the defaults)."""
    ref = [r["reference"] for r in rows]
    picks = {}
    for level in ("low", "mid"):
        best = max(range(len(rows)), key=lambda i: rows[i][level])
        picks[level] = {"index": best, "kind": rows[best]["kind"], "score": rows[best][level],
                        "reference": rows[best]["reference"],
                        "delta_ref_pp": round(100 * (rows[best]["reference"] - ref[0]), 2)}
    return {"settings": settings, "configurations": rows,
            "low_vs_reference": with_interval([r["low"] for r in rows], ref, settings["seed"]),
            "mid_vs_reference": with_interval([r["mid"] for r in rows], ref, settings["seed"]),
            "defaults_rank_at_reference": sorted(ref, reverse=True).index(ref[0]) + 1,
            "best_reference_over_defaults_pp": round(100 * (max(ref) - ref[0]), 2), "picks": picks}


SAME_SETTINGS = ("space", "configs", "subset", "val_size", "low", "mid", "ref")


def merge(old: dict | None, new: dict) -> dict:
    """``new`` (``{"runs": {seed: figure}}``) with the seeds of ``old`` it did not rerun, when both ran the same
    settings (:data:`SAME_SETTINGS`); otherwise ``new`` as it is."""
    runs = dict(new.get("runs") or {})
    setting = lambda run: {k: run["settings"].get(k) for k in SAME_SETTINGS}  # noqa: E731
    if old and old.get("status") == "ok" and runs:
        first = setting(next(iter(runs.values())))
        runs = {**{s: r for s, r in (old.get("runs") or {}).items() if s not in runs and setting(r) == first}, **runs}
    return {**new, "runs": runs}


if __name__ == "__main__":
    raise SystemExit(main())
