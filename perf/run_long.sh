#!/usr/bin/env bash
# Long inputs (issue 5): tokens/s and peak resident memory of one text of 512, 2048 and 8192
# tokens, each as a ratio to 16 x 128 measured in the same run, and peak memory of
# `encode -d` over documents of growing size (memory must stay flat).
#   bash perf/run_long.sh [--threads 2] MODEL.m3 [--docs "1 10 100"]
# MODEL.m3: a BGE-M3-shaped model (perf/peer/README.md makes synthetic ones). The document part
# uses the `long` fixture model (hidden 64, 2,048-token windows) so that 100 MB takes minutes,
# on text from tools/reference/corpus.txt repeated. Prints Markdown for perf/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2 model="" docs="1 10"
while (($#)); do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --docs) docs="$2"; shift 2 ;;
    *) model="$1"; shift ;;
  esac
done
bin="${M3_BUILD_DIR:-build}/m3embed"
tmp="${TMPDIR:-/tmp}/m3-run-long"
mkdir -p "$tmp"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; threads $threads;" \
     "commit $(git rev-parse --short HEAD); $(date -u +%Y-%m-%d)"
echo
if [[ -n "$model" ]]; then
  echo "| texts × tokens | tok/s | ratio to 16×128 | p50 ms | peak RSS MB (process, /usr/bin/time) |"
  echo "|---|---|---|---|---|"
  base=""
  for s in 16x128 1x512 1x2048 1x8192; do
    b="${s%x*}" t="${s#*x}" it=5
    ((t >= 2048)) && it=1
    line=$(/usr/bin/time -f "maxrss %M" "$bin" bench -m "$model" --batch "$b" --seq "$t" --iters "$it" --warmup 1 \
             --threads "$threads" 2>&1 | tail -2 | tr '\n' ' ')
    read -r tok p50 rss < <(sed -E 's/.*: ([0-9.]+) tok\/s, p50 ([0-9.]+) ms.*maxrss ([0-9]+).*/\1 \2 \3/' <<<"$line")
    [[ -z "$base" ]] && base="$tok"
    echo "| $b × $t | $tok | $(awk -v a="$tok" -v b="$base" 'BEGIN{printf "%.3f", a/b}') | $p50 | $((rss / 1024)) |"
  done
  echo
fi
small="$tmp/long.m3"
[[ -f "$small" ]] || "$bin" convert -q tests/fixtures/long -o "$small" --dtype f32
echo "| document (encode -d, --long window --sparse, long fixture model) | tokens | windows | seconds | peak RSS MB |"
echo "|---|---|---|---|---|"
for mb in $docs; do
  doc="$tmp/doc-$mb.txt"
  if [[ ! -f "$doc" ]]; then
    reps=$(( mb * 1000000 / $(stat -c %s tools/reference/corpus.txt) + 1 ))
    for ((i = 0; i < reps; ++i)); do cat tools/reference/corpus.txt; done | head -c $((mb * 1000000)) > "$doc" || true
  fi
  /usr/bin/time -o "$tmp/time.txt" -f "%M %e" "$bin" encode -q -m "$small" --long window --sparse --threads "$threads" \
    -d "$doc" > "$tmp/out.jsonl"
  read -r tokens windows < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["tokens"], d["windows"])' "$tmp/out.jsonl")
  read -r rss secs < "$tmp/time.txt"
  echo "| $mb MB | $tokens | $windows | $secs | $((rss / 1024)) |"
done
