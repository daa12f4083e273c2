#!/usr/bin/env python3
"""Regenerate the plain manifests under deploy/ from charts/hakeeper.

    python3 tests/chart/render.py          # write them
    python3 tests/chart/render.py --check  # exit 1 if any differs from the chart

Needs the packages of tests/chart/requirements.txt (tests/chart/run.sh installs them in a
virtual environment). deploy/examples/flinkdeployment.yaml is written by hand, not rendered.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, expected_deploy_files  # noqa: E402


def stale_files() -> list[Path]:
    """The rendered files under deploy/ that are missing or differ from the chart."""
    return [path for path, text in expected_deploy_files().items() if not path.exists() or path.read_text() != text]


def main() -> int:
    if "--check" in sys.argv[1:]:
        stale = stale_files()
        for path in stale:
            print(f"{path.relative_to(ROOT)} differs from the chart; run python3 tests/chart/render.py")
        return 1 if stale else 0
    for path, text in expected_deploy_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
