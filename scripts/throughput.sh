#!/usr/bin/env bash
# End-to-end figures for BENCHMARKS.md (run after `make wasm` and a release build):
#  1. achieved request rate vs the embedded origin's allowed rate, and its 429s;
#  2. MB/s of `pacer run` vs curl fetching the same files one after another from the same origin.
set -euo pipefail
cd "$(dirname "$0")/.."
pacer=target/release/pacer
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
field() { python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, s))' "$@"; }

echo "== 1. rate: 120 files of 100 kB, origin allows 10/s (burst 3), policy quota the same"
$pacer run --json --files 120 --file-size 100000 --origin-rate 36000 --origin-burst 3 --out "$work/rate" > "$work/rate.json"
echo "requests $(field "$work/rate.json" requests) in $(field "$work/rate.json" 'round(seconds, 2)') s:" \
  "$(field "$work/rate.json" 'round(requests_per_second, 3)')/s of $(field "$work/rate.json" allowed_per_second)/s allowed" \
  "= $(field "$work/rate.json" 'round(100 * requests_per_second / allowed_per_second, 1)') %;" \
  "429s seen $(field "$work/rate.json" throttled), sent by the origin $(field "$work/rate.json" 'origin["throttled"]')"

echo "== 2. throughput: 40 files of 10 MiB from one origin with no effective limit"
port=18099
$pacer origin --port $port --files 40 --file-size 10485760 --origin-rate 3.6e9 --origin-burst 100000 > "$work/origin.log" &
until curl -sf "http://127.0.0.1:$port/index.json" -o "$work/index.json"; do sleep 0.2; done
names=$(field "$work/index.json" '" ".join(f["name"] for f in files)')
mkdir -p "$work/curl"
start=$(date +%s.%N)
for name in $names; do curl -sf "http://127.0.0.1:$port/files/$name" -o "$work/curl/$name"; done
end=$(date +%s.%N)
python3 -c 'import sys; s = float(sys.argv[2]) - float(sys.argv[1]); print(f"curl, sequential:        {40 * 10485760 / 1e6 / s:7.1f} MB/s ({s:.2f} s)")' "$start" "$end"
echo '{"limiters":[{"name":"origin","tokens_per_hour":3.6e9,"burst":100000}],"jitter":{"strategy":"none"}}' > "$work/fast.json"
for workers in 1 3; do
  rm -rf "$work/pacer"
  $pacer run --json --origin "http://127.0.0.1:$port" --config "$work/fast.json" --workers $workers --out "$work/pacer" > "$work/run.json"
  echo "pacer run, $workers worker(s):  $(field "$work/run.json" 'round(bytes / 1e6 / seconds, 1)') MB/s ($(field "$work/run.json" 'round(seconds, 2)') s; sha256-verified, fsynced)"
done
