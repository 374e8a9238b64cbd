"""Self-contained HTML pages: one style, figures embedded as base64 PNG, tables from rows of dicts.

Shared by the retrain-best report (:mod:`fashion_tuner.report`) and the review page
(:mod:`fashion_tuner.review`): a page is one file that opens anywhere (no network, no side files).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Callable, Iterable

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1150px;color:#222;
padding:0 1em}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;margin:0.5em 0 1em;font-size:0.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}
pre{background:#f7f7f7;padding:0.8em;overflow-x:auto;font-size:0.8em}
img{max-width:100%;border:1px solid #eee}figure{margin:1em 0}figcaption{color:#555;font-size:0.9em}
.scroll{overflow-x:auto}.note{color:#8a5a00}
"""


def escape(text) -> str:
    """``text`` (any value, as ``str``) with ``& < > ' "`` escaped for HTML."""
    return html.escape(str(text))


def png_data_uri(path: str | Path) -> str:
    """A PNG file as a ``data:image/png;base64,...`` URI (the page then needs no side file)."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def figure(path: str | Path, alt: str, caption: str = "") -> str:
    """``<figure>`` with the PNG at ``path`` embedded and an optional caption."""
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f"<figure><img src='{png_data_uri(path)}' alt='{escape(alt)}'>{cap}</figure>"


def table(rows: list[dict], columns: list[str] | None = None, fmt: Callable[[object], str] = str) -> str:
    """An HTML table of ``rows`` (one dict per row; ``columns`` default: every key, first seen first),
    each cell ``fmt(value)`` escaped; "none" when there are no rows. Scrolls sideways when wide."""
    if not rows:
        return "<p><em>none</em></p>"
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(fmt(r.get(c, '')))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def note(text: str) -> str:
    """A highlighted paragraph (a caveat the reader should not miss)."""
    return f"<p class='note'>{escape(text)}</p>"


def page(title: str, parts: Iterable[str]) -> str:
    """The whole document: ``title`` as ``<title>`` and ``<h1>``, then the HTML ``parts`` in order."""
    head = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{CSS}</style></head><body>")
    return "\n".join([head, f"<h1>{escape(title)}</h1>", *parts, "</body></html>"])
