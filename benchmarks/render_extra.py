"""The benchmark page's other sections: peers at equal wall time (anytime figures), the ablations of
training tricks, and the reliability table (overhead, scale, memory, determinism, backends, the GPU check)."""

from __future__ import annotations

from benchmarks.cells import code, dur, suite_cell
from benchmarks.sampler_synthetic import LOSS_PP as SYNTHETIC_LOSS_PP  # stdlib imports only at its top
from benchmarks.suites import PAIRS


# ----------------------------------------------------------------------------- peers at equal wall time

def anytime_lines(entry: dict | None) -> list[str]:
    """The equal-wall-time table (``figures.peers_time``): per approach the median and range over seeds of
    the final best validation accuracy and of the time to reach the target; empty without the figure."""
    if not entry:
        return []
    head = (f"Peers at equal wall time ({dur(entry.get('budget_s'))} per approach and seed, seeds "
            f"{', '.join(map(str, entry.get('seeds', [])))}; the CNN space; best validation accuracy so far "
            f"against wall time in `benchmarks/results.json` under `figures.peers_time.curves`, plotted in "
            f"`benchmarks/anytime.png` for the full suite):")
    lines = [head, "", f"| approach | best val accuracy at the budget, median (range) | time to val accuracy "
             f">= {entry.get('target')}, median (range) | seeds reaching it | suite | rerun |",
             "|---|---|---|---|---|---|"]
    if entry.get("status") == "failed" and not entry.get("summary"):
        lines.append(f"| failed: {entry.get('error', '')[:80]} | | | | {suite_cell(entry)} | "
                     f"{code(entry.get('rerun', ''))} |")
    for approach, s in (entry.get("summary") or {}).items():
        final = _median_range(s.get("final_val_accuracy"), "{:.4f}")
        reach = _median_range(s.get("time_to_target_s"), None)
        lines.append(f"| {approach} | {final} | {reach} | {s.get('reached', 0)} of {s.get('runs', 0)} | "
                     f"{suite_cell(entry)} | {code(entry.get('rerun', ''))} |")
    if entry.get("speedup_vs_random") is not None:
        lines += ["", f"Random search needs x{entry['speedup_vs_random']:.2f} ours' time to reach the target (medians "
                      "over seeds)."]
    return lines + [""]


def _median_range(stat: dict | None, fmt: str | None) -> str:
    if not stat or stat.get("median") is None:
        return "-"
    show = (lambda v: fmt.format(v)) if fmt else dur
    return f"{show(stat['median'])} ({show(stat['min'])}-{show(stat['max'])})"


# ----------------------------------------------------------------------------- search against the defaults

SEARCH_VALUE_TITLES = {"search_value": "the cnn space", "search_value_bad": "the cnn space with poor defaults",
                       "search_value_mlp": "the mlp space"}


def search_value_lines(figures: dict) -> list[str]:
    """One table per ``search_value*`` figure: per arm, ``delta_ref`` (its pick retrained at the reference
    fidelity minus the defaults retrained the same way, pp, per seed), its median and minimum, and the best
    validation accuracy the arm itself reached within the budget; empty without the figures."""
    lines = []
    for name, title in SEARCH_VALUE_TITLES.items():
        entry = figures.get(name)
        if not entry:
            continue
        lines += [f"Search against the defaults, {title} (`{name}`: each arm alone for {dur(entry.get('budget_s'))} "
                  f"per seed on {entry.get('subset', 0):,} training images; its pick retrained {entry.get('ref_epochs')} "
                  f"epochs at {entry.get('train_seeds')} training seed(s) and scored on validation; delta_ref = pick "
                  f"minus the defaults at the same seed, pp; seeds {', '.join(map(str, entry.get('seeds', [])))}):", "",
                  "| arm | delta_ref per seed, pp | median | min | best val accuracy within the budget, median (range) "
                  "| trials (defaults: epochs) | pick: hyperparameters changed from the defaults, per seed | suite | rerun |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for arm, d in (entry.get("delta") or {}).items():
            per_seed = ", ".join(f"{s}: {v:+.2f}" for s, v in d.get("delta_ref", {}).items()) or "-"
            median = "-" if d.get("median_pp") is None else f"{d['median_pp']:+.2f}"
            low = "-" if d.get("min_pp") is None else f"{d['min_pp']:+.2f}"
            final = _median_range((entry.get("anytime") or {}).get(arm, {}).get("final_val_accuracy"), "{:.4f}")
            unit = " epochs" if arm == "defaults" else ""  # the defaults arm trains one model: its epochs
            trials = ", ".join(f"{r.get('trials_completed', '-')}{unit}" for r in (entry.get("runs") or {}).get(arm, {}).values())
            changed = ", ".join("-" if n is None else ("0 (the defaults)" if n == 0 else str(n))
                                for n in (entry.get("changed") or {}).get(arm, {}).values()) or "-"
            seeds = " ".join((entry.get("runs") or {}).get(arm, {})) or " ".join(map(str, entry.get("seeds", [])))
            rerun = (f"python -m benchmarks.run --suite {entry.get('suite', 'full')} --only {name} --seeds {seeds} "
                     f"--approaches {arm}")  # this arm at its own seeds (the harness merges them into the figure)
            lines.append(f"| {arm} | {per_seed} | {median} | {low} | {final} | {trials or '-'} | {changed} | "
                         f"{suite_cell(entry)} | {code(rerun)} |")
        lines.append("")
    return lines + sampler_synthetic_lines(figures.get("sampler_synthetic")) + fidelity_lines(figures.get("fidelity"))


def fidelity_lines(entry: dict | None) -> list[str]:
    """``fidelity``: per seed, Spearman's rho of the low and mid scores against the reference fit (95 % bootstrap
    interval), the defaults' rank at the reference, and what picking the best low (mid) score gains over them."""
    if not entry:
        return []
    lines = ["How well short trials rank configurations (`benchmarks/fidelity.py`: the defaults, then local and "
             "uniform draws alternately, each trained at the search's rungs and once at the reference fidelity; "
             "rho: Spearman against the reference, 95 % bootstrap interval; a pick: the best score at that "
             "fidelity, its reference minus the defaults', pp):", "",
             "| seed | configurations | low: epochs, rho | mid: epochs, rho | defaults' rank at the reference | "
             "pick at low | pick at mid | best at the reference | suite | rerun |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    if entry.get("status") != "ok":
        return lines + [f"| failed: {entry.get('error', '')[:80]} | | | | | | | | {suite_cell(entry)} | "
                        f"{code(entry.get('rerun', ''))} |", ""]
    rho = lambda r: f"{r['rho']:+.2f} ({r['low']:+.2f} to {r['high']:+.2f})"  # noqa: E731
    for seed, run in (entry.get("runs") or {}).items():
        p, picks = run["settings"], run["picks"]
        pick = lambda level: f"{picks[level]['kind']} {picks[level]['delta_ref_pp']:+.2f}"  # noqa: E731
        rerun = f"python -m benchmarks.run --suite {entry.get('suite', 'full')} --only fidelity --seeds {seed}"
        lines.append(f"| {seed} | {len(run['configurations'])} on {p['subset']:,} images | {p['low']}: "
                     f"{rho(run['low_vs_reference'])} | {p['mid']}: {rho(run['mid_vs_reference'])} | "
                     f"{run['defaults_rank_at_reference']} of {len(run['configurations'])} | {pick('low')} | "
                     f"{pick('mid')} | {run['best_reference_over_defaults_pp']:+.2f} | {suite_cell(entry)} | "
                     f"{code(rerun)} |")
    return lines + [""]


def sampler_synthetic_lines(entry: dict | None) -> list[str]:
    """``sampler_synthetic``: per synthetic case and arm, the pick's noise-free score minus the defaults' (pp)."""
    if not entry:
        return []
    lines = [f"The samplers on synthetic objectives (`benchmarks/sampler_synthetic.py`: {entry.get('trials')} trials "
             f"per search, {entry.get('seeds')} seeds per cell; the pick's noise-free score minus the defaults', pp; "
             f"losses: seeds below {SYNTHETIC_LOSS_PP} pp):", "",
             "| case | arm | median | mean | losses | gains over 1 pp | suite | rerun |",
             "|---|---|---|---|---|---|---|---|"]
    if entry.get("status") != "ok":
        return lines + [f"| failed: {entry.get('error', '')[:80]} | | | | | | {suite_cell(entry)} | "
                        f"{code(entry.get('rerun', ''))} |", ""]
    for case, arms in entry.get("cases", {}).items():
        for arm, f in arms.items():
            lines.append(f"| {case} | {arm} | {f['median_pp']:+.2f} | {f['mean_pp']:+.2f} | "
                         f"{f['losses']}/{f['seeds']} | {f['gains_over_1pp']}/{f['seeds']} | {suite_cell(entry)} | "
                         f"{code(entry.get('rerun', ''))} |")
    return lines + [""]


# ----------------------------------------------------------------------------- ablations

def ablation_lines(entry: dict | None) -> list[str]:
    """The ablation table (``figures.ablation``): per variant the paired gain over the defaults, the flip
    TTA gain and the fit-time ratio, over seeds; empty without the figure."""
    if not entry:
        return []
    p = entry.get("settings", {})
    lines = [f"Ablations of training tricks on the cnn defaults ({p.get('epochs')} epochs on "
             f"{entry.get('n_train', 0):,} training images, scored on {entry.get('n_val', 0):,} validation images, "
             f"seeds {', '.join(map(str, entry.get('seeds', [])))}; gains in percentage points against the "
             f"defaults at the same seed, mean (min to max); `benchmarks/ablation.py`):", "",
             "| variant | val accuracy, mean | gain over defaults, pp | + flip TTA, pp | fit time | parameters | "
             "verdict | suite | rerun |", "|---|---|---|---|---|---|---|---|---|"]
    if entry.get("status") != "ok":
        return lines + [f"| failed: {entry.get('error', '')[:80]} | | | | | | | {suite_cell(entry)} | "
                        f"{code(entry.get('rerun', ''))} |", ""]
    for name, s in entry.get("summary", {}).items():
        gain = "-" if name == "baseline" else _pp(s["gain_pp"])
        lines.append(f"| {name} | {s['mean_val_accuracy']:.4f} | {gain} | {_pp(s['tta_gain_pp'])} | "
                     f"x{s['time_ratio']:.2f} | {s['params']:,} | {s['verdict']} | {suite_cell(entry)} | "
                     f"{code(entry.get('rerun', ''))} |")
    return lines + [""]


def _pp(stat: dict) -> str:
    return f"{stat['mean']:+.2f} ({stat['min']:+.2f} to {stat['max']:+.2f})"


# ----------------------------------------------------------------------------- reliability

def failed_row(name: str, entry: dict) -> str:
    return f"| {name} | failed: {entry.get('error', '')[:80]} | | {suite_cell(entry)} | {code(entry.get('rerun', ''))} |"


def reliability_lines(figures: dict) -> list[str]:
    """Every reliability figure present, one or two lines each; a placeholder line when there is none."""
    rows = (overhead_rows(figures.get("overhead")) + scale_rows(figures.get("scale"))
            + memory_rows(figures.get("memory")) + deterministic_rows(figures.get("deterministic"))
            + backend_rows(figures) + pair_rows(figures) + roofline_rows(figures.get("roofline"))
            + budget_load_rows(figures.get("budget_load")))
    return rows or ["| (no figures yet) | | | | |"]


def budget_load_rows(b: dict | None) -> list[str]:
    """``budget_load``: each command's wall time against its budget, with busy loops beside it."""
    if not b:
        return []
    if b.get("status") != "ok":
        return [failed_row("budget_load", b)]
    return [f"| `{command}` --time-budget {dur(r['budget_s'])} with {b['busy_loops']} busy loop(s) on "
            f"{b['cores']} core(s) ({b['space']}): wall time | {dur(r['wall_s'])} ({r['overrun_s']:+.0f} s) | "
            f"<= budget + {r['allowed_s']:.0f} s | {suite_cell(b)} | {code(b['rerun'])} |"
            for command, r in (("search", b["search"]), ("retrain-best", b["retrain"]))]


def pair_rows(figures: dict) -> list[str]:
    """One row per arm of each epoch_pairs comparison: s/epoch ratio against the baseline, accuracy difference."""
    rows = []
    for name in PAIRS:
        e = figures.get(name)
        if not e:
            continue
        if e.get("status") != "ok":
            rows.append(failed_row(name, e))
            continue
        base = e["summary"][e["baseline"]]
        load = e.get("load_average_1m", {})
        timed = e.get("seconds")  # equal wall time: the epochs that fitted, and accuracy at equal minutes
        schedule = f"{timed:g} s per fit" if timed else f"{e['epochs']} epochs"
        for arm in e["arms"][1:]:
            a = e["summary"][arm]
            spent = [t for arm_row in (base, a) for t in arm_row.get("fit_s", []) if t is not None]
            fitted = (f"; epochs {'/'.join(map(str, base.get('epochs_run', [])))} vs "
                      f"{'/'.join(map(str, a.get('epochs_run', [])))}"
                      + (f", fits of {min(spent):.0f}-{max(spent):.0f} s" if spent else "") if timed else "")
            rows.append(f"| default CNN, {e['baseline']} vs {arm}: s/epoch ratio (median; {e['images']} images, "
                        f"{schedule}, {len(e['seeds'])} seed(s) x {e['rounds']} round(s); load "
                        f"{load.get('before')} -> {load.get('after')}) | x{a['speedup']:.2f} ({base['median_epoch_s']:.2f}"
                        f" vs {a['median_epoch_s']:.2f} s{fitted}); val accuracy {100 * a['accuracy_diff_mean']:+.2f} pp | "
                        f"{'higher accuracy in the same time' if timed else '> x1 at equal accuracy'} | "
                        f"{suite_cell(e)} | {code(e['rerun'])} |")
    return rows


def overhead_rows(o: dict | None) -> list[str]:
    if not o:
        return []
    if o.get("status") != "ok":
        return [failed_row("overhead", o)]
    share = o.get("outside_fit_share")
    return [f"| trial fit vs bare `model.fit`, time per epoch (median) | x{o['epoch_ratio']:.3f} "
            f"({o['epoch_s_ours']:.3f} s vs {o['epoch_s_bare']:.3f} s) | ~x1.0 | {suite_cell(o)} | "
            f"{code(o['rerun'])} |",
            f"| share of search wall time outside `model.fit` | "
            f"{'-' if share is None else f'{share:.1%}'} of {dur(o.get('search_s'))} "
            f"({o.get('outside_fit_share_process', 0):.1%} counting process start-up) | <= 5% | "
            f"{suite_cell(o)} | {code(o['rerun'])} |"]


def scale_rows(s: dict | None) -> list[str]:
    rows = []
    for stem, r in (s or {}).get("scripts", {}).items():
        if r.get("status") == "ok":
            value = ", ".join(f"{k} {v}" for k, v in r.items()
                              if k not in ("status", "command", "runs_s", "wall_s") and not isinstance(v, (dict, list)))
            rows.append(f"| `benchmarks/{stem}.py` | {value} | | {suite_cell(s)} | {code(r['command'])} |")
        else:
            rows.append(f"| `benchmarks/{stem}.py` | {r.get('status')}: {(r.get('error') or r.get('note', ''))[:80]} "
                        f"| | {suite_cell(s)} | {code(s.get('rerun', ''))} |")
    return rows


def memory_rows(m: dict | None) -> list[str]:
    if not m:
        return []
    if m.get("status") != "ok":
        return [failed_row("memory", m)]
    how = (f"a fresh process every {m['trials_per_process']} trials ({m['processes']} processes)"
           if m.get("trials_per_process") else "one process")
    rows = [f"| RSS growth, MLP trial {m['growth_from_trial']} to {m['trials']} (subset {m['subset']}, "
            f"{m['epochs']} epoch(s) per trial; {how}; largest rise after trial {m['growth_from_trial']}) "
            f"| {m['growth_mb']:+.1f} MB | < {m['goal_mb']:.0f} MB over 30 trials | "
            f"{suite_cell(m)} | {code(m['rerun'])} |"]
    one = m.get("one_process")
    if one:
        rows.append(f"| the same search in one process (`--trials-per-process 0`) | {one['growth_mb']:+.1f} MB "
                    f"| (for comparison) | {suite_cell(m)} | {code(m['rerun'])} |")
    return rows


def deterministic_rows(d: dict | None) -> list[str]:
    if not d:
        return []
    if d.get("status") != "ok":
        return [failed_row("deterministic", d)]
    repro = {True: "; scores reproduced", False: "; scores NOT reproduced", None: ""}[d.get("deterministic_reproducible")]
    return [f"| `--deterministic` slowdown ({d['space']}, {d['max_trials']} trial(s) x {d['max_epochs']} "
            f"epoch(s), median of {d['repeats']}) | x{d['slowdown']:.2f}{repro} | | {suite_cell(d)} | "
            f"{code(d['rerun'])} |"]


def backend_rows(figures: dict) -> list[str]:
    """Seconds per epoch per Keras backend (benchmarks/backend_epoch.py) and the GPU check's steps."""
    rows = []
    b = figures.get("backends")
    if b:
        ok = [m for m in b.get("measurements", []) if m.get("status") == "ok"]
        value = ", ".join(f"{m['backend']} {m['epoch_s']:.1f} s ({m['policy']})" for m in ok) or "none measured"
        rows.append(f"| seconds per epoch, default CNN, {ok[0]['images'] if ok else '?'} images, by Keras backend "
                    f"(one run; {b['machine'].get('device')}) | {value} | TensorFlow the CPU default | "
                    f"{suite_cell(b)} | {code(b.get('rerun', ''))} |")
    g = figures.get("gpu")
    if g:
        steps = g.get("steps", {})
        epochs = ", ".join(f"{m['policy']} {m['epoch_s']:.2f} s" for m in steps.get("cnn_epoch", {}).get("measurements", [])
                           if m.get("status") == "ok")
        value = ", ".join(f"{k} {v}" for k, v in (g.get("step_status") or {}).items())
        rows.append(f"| GPU check on JAX ({g['machine'].get('device')}): {value} | CNN s/epoch: {epochs or '-'} | "
                    f"every step ok | {g.get('suite')} | {code(g.get('rerun', ''))} |")
    return rows


def roofline_bf16(r: dict) -> str:
    """The mixed_bfloat16 fit's part of the roofline cell (empty where the CPU has no native bfloat16)."""
    b = r.get("bfloat16")
    if not b:
        return ""
    return (f"; mixed_bfloat16 {b['achieved_gflops']:.1f} GFLOP/s (x{b['speedup_over_float32']:.2f} per epoch) = "
            f"{b['achieved_of_peak']:.0%} of the bfloat16 peak {r['peak']['bfloat16_gflops']} GFLOP/s, "
            f"{b['achieved_of_matmul']:.0%} of tf.matmul's {r['matmul_gflops']['bfloat16']}")


def roofline_rows(r: dict | None) -> list[str]:
    """The default CNN's achieved FLOP/s against this CPU's peak and tf.matmul (benchmarks/roofline.py)."""
    if not r:
        return []
    if r.get("status") != "ok":
        return [failed_row("roofline", r)]
    top, layers = r["peak"], sorted(r["layers"], key=lambda x: -x["forward_flops"])
    total = sum(x["forward_flops"] for x in layers) or 1
    lead = ", ".join(f"{x['layer']} {x['forward_flops'] / total:.0%}" for x in layers[:3])
    return [f"| default CNN roofline ({r['images']} images; {r['train_mflop_per_image']:.1f} MFLOP per training "
            f"image; most FLOPs: {lead}) | {r['achieved_gflops']:.1f} GFLOP/s achieved = "
            f"{'-' if r['achieved_of_peak'] is None else format(r['achieved_of_peak'], '.0%')} of the float32 "
            f"peak {top['float32_gflops']} GFLOP/s, "
            f"{r['achieved_of_matmul']:.0%} of tf.matmul's {r['matmul_gflops']['float32']}{roofline_bf16(r)} "
            f"| within x2 of the limit "
            f"| {suite_cell(r)} | {code(r['rerun'])} |"]