#!/usr/bin/env python3
"""Open a report.html in headless Chromium, check its images rendered, and save a screenshot.

Usage: ``python scripts/screenshot_report.py REPORT_HTML OUT_PNG [--chromium PATH]``

Two Chromium runs, both offline (no network, no GPU, a throw-away profile):

1. ``--dump-dom`` of a copy of the page with a small script appended that, on ``load``,
   counts the ``<img>`` elements and those that decoded (``naturalWidth > 0``) and writes
   both numbers into the DOM;
2. ``--screenshot`` of the page itself at 1200x3000, decoded with Pillow and checked to
   be neither blank nor a single colour.

Prints one JSON line (``images``, ``rendered``, ``screenshot``, ``size``, ``pixel_std``) and
exits 0 when every image rendered and the screenshot is not blank, 1 when not, 2 when
Chromium is missing or fails.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
WINDOW = "1200,3000"
TIMEOUT_S = 120
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]
# Chromium's own pixel std of a blank page is 0; a report with figures and tables is far above this.
MIN_PIXEL_STD = 5.0
CHECK_SCRIPT = """
<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var d = document.createElement("div");
  d.id = "ft-img-check";
  d.setAttribute("data-total", String(imgs.length));
  d.setAttribute("data-rendered", String(ok));
  document.body.appendChild(d);
});
</script>
"""
CHECK_RE = re.compile(r'id="ft-img-check"[^>]*data-total="(\d+)"[^>]*data-rendered="(\d+)"')


def run_chromium(chromium: str, args: list[str], profile: Path) -> subprocess.CompletedProcess:
    cmd = [chromium, *FLAGS, f"--user-data-dir={profile}", *args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SystemExit(_fail(2, f"chromium timed out after {TIMEOUT_S} s: {' '.join(cmd)}"))


def _fail(code: int, message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def count_rendered(chromium: str, html_path: Path, work: Path) -> tuple[int, int]:
    """``(images, rendered)`` as seen by Chromium after the page's load event."""
    page = html_path.read_text(encoding="utf-8")
    probe = work / "probe.html"
    probe.write_text(page.replace("</body>", CHECK_SCRIPT + "</body>") if "</body>" in page else page + CHECK_SCRIPT,
                     encoding="utf-8")
    proc = run_chromium(chromium, ["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()], work / "profile1")
    match = CHECK_RE.search(proc.stdout)
    if not match:
        raise SystemExit(_fail(2, f"chromium did not run the check script (rc {proc.returncode}): "
                                  f"{proc.stderr.strip().splitlines()[-1:] or 'no output'}"))
    return int(match.group(1)), int(match.group(2))


def screenshot(chromium: str, html_path: Path, out_png: Path, work: Path) -> dict:
    """Save a 1200x3000 screenshot and describe it (size, pixel std, share of the dominant colour)."""
    import numpy as np
    from PIL import Image

    out_png.parent.mkdir(parents=True, exist_ok=True)
    out_png.unlink(missing_ok=True)
    proc = run_chromium(chromium, [f"--screenshot={out_png.resolve()}", f"--window-size={WINDOW}",
                                   "--virtual-time-budget=10000", html_path.resolve().as_uri()], work / "profile2")
    if not out_png.is_file():
        raise SystemExit(_fail(2, f"chromium wrote no screenshot (rc {proc.returncode}): "
                                  f"{proc.stderr.strip().splitlines()[-1:] or 'no output'}"))
    with Image.open(out_png) as img:
        arr = np.asarray(img.convert("L"), dtype=np.float64)
        size = img.size
    values, counts = np.unique(arr.astype(np.uint8), return_counts=True)
    return {"size": list(size), "pixel_std": float(arr.std()), "dominant_share": float(counts.max() / counts.sum())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html")
    parser.add_argument("out_png")
    parser.add_argument("--chromium", default=CHROMIUM)
    args = parser.parse_args(argv)
    html_path, out_png = Path(args.html), Path(args.out_png)
    chromium = args.chromium if Path(args.chromium).is_file() else shutil.which(args.chromium)
    if not chromium:
        return _fail(2, f"{args.chromium} not found; install it with `apt-get install -y chromium`")
    if not html_path.is_file():
        return _fail(2, f"{html_path} does not exist")
    with tempfile.TemporaryDirectory(prefix="ft-chromium-") as tmp:
        work = Path(tmp)
        total, rendered = count_rendered(chromium, html_path, work)
        shot = screenshot(chromium, html_path, out_png, work)
    result = {"html": str(html_path), "images": total, "rendered": rendered, "screenshot": str(out_png), **shot}
    print(json.dumps(result))
    problems = []
    if total == 0:
        problems.append("the page has no <img> elements")
    if rendered < total:
        problems.append(f"only {rendered} of {total} images rendered")
    if shot["pixel_std"] < MIN_PIXEL_STD:
        problems.append(f"the screenshot looks blank (pixel std {shot['pixel_std']:.2f})")
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
