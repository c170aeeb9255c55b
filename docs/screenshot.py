"""Render the HTML report of a healed project in headless Chromium and save docs/report.png.

python docs/screenshot.py                  # runs `selfheal demo` first (about 2 minutes)
python docs/screenshot.py --project DIR    # report of an existing project's store
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def demo_project(work: Path) -> Path:
    """A project healed by the real demo; its path is the demo's `demo-shop` directory."""
    subprocess.run([sys.executable, "-m", "agent.cli", "demo", "--dir", str(work)], check=False)
    project = work / "demo-shop"
    if not (project / ".selfheal" / "selfheal.db").exists():
        sys.exit(f"screenshot: the demo left no store in {project}")
    return project


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="a project with a .selfheal store")
    parser.add_argument("--out", type=Path, default=HERE / "report.png")
    parser.add_argument("--size", default="1280,1500", help="window WIDTH,HEIGHT")
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("screenshot: chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="selfheal-shot-") as tmp:
        work = Path(tmp)
        project = args.project.resolve() if args.project else demo_project(work)
        page = work / "report.html"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "agent.cli",
                "--root",
                str(project),
                "report",
                "--html",
                str(page),
            ],
            check=True,
        )
        subprocess.run(
            [
                browser,
                *FLAGS,
                f"--user-data-dir={work / 'profile'}",
                f"--window-size={args.size}",
                f"--screenshot={args.out}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    print(f"screenshot: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
