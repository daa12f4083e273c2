#!/usr/bin/env bash
# Stop what tests/realk8s/start.sh DIR started, newest first.
set -uo pipefail
dir="${1:?usage: stop.sh DIR}"
[ -f "$dir/pids" ] || exit 0
tac "$dir/pids" | while read -r pid; do
  kill "$pid" 2>/dev/null || true
done
for _ in $(seq 1 50); do
  alive=0
  while read -r pid; do
    if kill -0 "$pid" 2>/dev/null; then alive=1; fi
  done < "$dir/pids"
  [ "$alive" = 0 ] && break
  sleep 0.1
done
while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done < "$dir/pids"
rm -f "$dir/pids"
