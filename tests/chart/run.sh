#!/usr/bin/env bash
# Checks of the Helm chart and of deploy/: creates a virtual environment in DIR (default: a
# temporary directory, removed at the end), installs tests/chart/requirements.txt into it and
# runs tests/chart/check.py. Its last line is `chart: N passed, N failed, N skipped`; the exit
# status is check.py's.
#
#   bash tests/chart/run.sh [DIR]
#
# With a DIR that already holds the environment, the install finds everything in place. The
# command-line checks use target/debug/hakeeper (or $HAKEEPER_BIN) when it has been built,
# and say they were skipped otherwise.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if [ "$#" -ge 1 ]; then
  venv="$1"
else
  venv="$(mktemp -d)"
  trap 'rm -rf "$venv"' EXIT
fi

python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"

export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" "$here/check.py"
