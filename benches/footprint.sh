#!/usr/bin/env bash
# The sidecar's footprint: startup time to ready (all four components led), resident memory
# and CPU at rest while holding them, and the release binary's size. Measured from /proc.
#   cargo build --release && bash benches/footprint.sh [REST_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/hakeeper
rest="${1:-60}"
job=0123456789abcdef0123456789abcdef
work="$(mktemp -d)"
cleanup() {
  # The sidecar first, so that it can release its leases while the API server is still up.
  if [ -n "${sidecar_pid:-}" ]; then kill "$sidecar_pid" 2>/dev/null || true; wait "$sidecar_pid" 2>/dev/null || true; fi
  if [ -n "${dev_pid:-}" ]; then kill "$dev_pid" 2>/dev/null || true; wait "$dev_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" dev --kubeconfig-out "$work/kubeconfig" --log warn > "$work/dev.out" &
dev_pid=$!
for _ in $(seq 100); do [ -s "$work/kubeconfig" ] && break; sleep 0.05; done

start_ns=$(date +%s%N)
"$bin" sidecar --cluster-id footprint --listen 127.0.0.1:0 --kubeconfig "$work/kubeconfig" \
  --storage-dir "file://$work/ha" --log warn \
  --contend "dispatcher,resourcemanager,restserver,jobmanager/$job" --address jm-0:6123 --liveness none \
  > "$work/sidecar.out" &
sidecar_pid=$!
url=""
for _ in $(seq 400); do
  url=$(sed -n 's/^hakeeper sidecar: local API on //p' "$work/sidecar.out" 2>/dev/null || true)
  [ -n "$url" ] && break; sleep 0.005
done
leads() { curl -fs "$url/readyz?leader=$1" > /dev/null; }
until leads dispatcher && leads resourcemanager && leads restserver && leads "jobmanager/$job"; do sleep 0.005; done
ready_ns=$(date +%s%N)
echo "startup to ready (process start to leading all 4 components): $(( (ready_ns - start_ns) / 1000000 )) ms"

sleep 5
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$sidecar_pid/stat"; }
c0=$(cpu); t0=$(date +%s%N)
sleep "$rest"
c1=$(cpu); t1=$(date +%s%N)
awk -v c="$((c1 - c0))" -v hz="$ticks" -v ns="$((t1 - t0))" \
  'BEGIN { printf "CPU at rest over %.0f s: %.3f%% of one core (%d ticks)\n", ns / 1e9, 100 * (c / hz) / (ns / 1e9), c }'
grep -E '^(VmRSS|VmHWM|Threads)' "/proc/$sidecar_pid/status" | sed 's/^/resident: /'
size=$(stat -c %s "$bin")
stripped="$work/hakeeper.stripped"
strip -o "$stripped" "$bin"
echo "release binary: $size bytes ($(( size / 1048576 )) MiB); stripped: $(stat -c %s "$stripped") bytes ($(( $(stat -c %s "$stripped") / 1048576 )) MiB)"
