"""Screenshot a search's report with headless Chromium (Debian package `chromium`) and check what a person
sees: every image loaded, no table wider than the page.

    python bench/report_screenshot.py .mixtura/artifacts/default/demo/<uid>/report/index.html --out report.png

The checks run in the page itself (a copy beside it with a script added, so relative image paths resolve),
read back with `--dump-dom`; prints one row per check and a summary line, exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

CHECK_SCRIPT = """<script>
window.addEventListener("load", () => {
  const width = document.documentElement.clientWidth;
  const images = [...document.images].map(i => ({src: i.getAttribute("src"), ok: i.complete && i.naturalWidth > 0}));
  // A table overflows when it runs past the page or past its (scrolling) container: either way cells are hidden.
  const tables = [...document.querySelectorAll("table")].map((t, k) => ({
    table: k, width: Math.round(t.getBoundingClientRect().right),
    overflows: t.getBoundingClientRect().right > width || t.parentElement.scrollWidth > t.parentElement.clientWidth,
  }));
  const out = document.createElement("pre");
  out.id = "mixtura-check";
  const height = document.documentElement.scrollHeight;
  out.textContent = JSON.stringify({width, height, images, tables});
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return name
    raise SystemExit("no headless Chromium: apt-get install chromium")


def browse(page: Path, *args: str, width: int, height: int) -> str:
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    command += [f"--window-size={width},{height}", "--virtual-time-budget=5000", *args, page.resolve().as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout


def check(report: Path, width: int) -> dict:
    probe = report.with_name("_screenshot_check.html")
    probe.write_text(report.read_text().replace("</body>", CHECK_SCRIPT + "</body>"))
    try:
        dom = browse(probe, "--dump-dom", width=width, height=1000)
    finally:
        probe.unlink()
    found = re.search(r'<pre id="mixtura-check">(.*?)</pre>', dom, re.S)
    if not found:
        raise SystemExit("the check script did not run")
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("report", type=Path)
    parser.add_argument("--out", type=Path, default=Path("report.png"))
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()
    result = check(args.report, args.width)
    browse(args.report, f"--screenshot={args.out.resolve()}", width=args.width, height=result["height"])
    rows = [(f"image {i['src']}", "loaded" if i["ok"] else "BROKEN") for i in result["images"]]
    rows += [
        (f"table {t['table']} right edge {t['width']} px", "OVERFLOWS" if t["overflows"] else "fits")
        for t in result["tables"]
    ]
    print(f"| check (page width {result['width']} px) | result |\n|---|---|")
    for name, outcome in rows:
        print(f"| {name} | {outcome} |")
    failed = sum(outcome in ("BROKEN", "OVERFLOWS") for _, outcome in rows)
    print(f"{len(result['images'])} images, {len(result['tables'])} tables, {failed} problems; screenshot {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
