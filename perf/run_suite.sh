#!/usr/bin/env bash
# The standard benchmark suite: every model file given, over the shapes
# 1x16 (query latency), 16x128 (throughput), 4x512, 1x2048 and 1x8192, with `m3embed bench`.
# Prints a Markdown table to stdout (paste it into perf/RESULTS.md with the date and commit).
#   bash perf/run_suite.sh [--threads 2] [--iters 5] MODEL.m3 [MODEL2.m3 ...]
# Environment: M3_BUILD_DIR (default build), M3_SHAPES (default "1x16 16x128 4x512 1x2048 1x8192").
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2 iters=5
models=()
while (($#)); do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --iters) iters="$2"; shift 2 ;;
    *) models+=("$1"); shift ;;
  esac
done
((${#models[@]})) || { echo "usage: perf/run_suite.sh [--threads N] [--iters N] MODEL.m3 ..." >&2; exit 1; }
bin="${M3_BUILD_DIR:-build}/m3embed"
shapes=(${M3_SHAPES:-1x16 16x128 4x512 1x2048 1x8192})

echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; threads $threads;" \
     "commit $(git rev-parse --short HEAD); $(date -u +%Y-%m-%d)"
echo
echo "| model | shape | tok/s | p50 ms | p95 ms | peak MB |"
echo "|---|---|---|---|---|---|"
for m in "${models[@]}"; do
  for s in "${shapes[@]}"; do
    b="${s%x*}" t="${s#*x}"
    it="$iters"; ((t >= 2048)) && it=$(( iters < 3 ? iters : 3 ))
    line=$("$bin" bench -m "$m" --batch "$b" --seq "$t" --iters "$it" --warmup 1 --threads "$threads" | tail -1)
    # "16x128 f32: 812.3 tok/s, p50 2521.0 ms, p95 2600.1 ms, peak 2410 MB (...)"
    read -r tok p50 p95 peak < <(sed -E 's/.*: ([0-9.]+) tok\/s, p50 ([0-9.]+) ms, p95 ([0-9.]+) ms, peak ([0-9.]+) MB.*/\1 \2 \3 \4/' <<<"$line")
    echo "| $(basename "$m") | $s | $tok | $p50 | $p95 | $peak |"
  done
done
