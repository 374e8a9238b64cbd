"""Table cells shared by the benchmark page's sections: accuracy with its interval, durations, suite, code."""

from __future__ import annotations

from benchmarks.seeds import wilson


def ci_of(row: dict) -> list[float] | None:
    """The row's Wilson interval: recomputed from ``test_accuracy`` and ``n_test``, else the stored one."""
    return wilson(row.get("test_accuracy"), row.get("n_test")) or row.get("test_accuracy_ci95")


def acc(value, ci=None) -> str:
    """``0.9405 (0.933-0.947)``: an accuracy and its interval, or ``-``."""
    if value is None:
        return "-"
    text = f"{value:.4f}"
    if ci and all(isinstance(c, (int, float)) for c in ci):
        text += f" ({ci[0]:.3f}-{ci[1]:.3f})"
    return text


def dur(seconds) -> str:
    """A duration in seconds as ``42 s``, ``11m29s`` or ``1h05m``; ``-`` when not a number."""
    if not isinstance(seconds, (int, float)):
        return "-"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def suite_cell(entry: dict) -> str:
    return "full" if entry.get("suite") == "full" else f"{entry.get('suite')} (subset; harness check)"


def code(text: str) -> str:
    return f"`{text}`"
