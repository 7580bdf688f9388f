#!/usr/bin/env bash
# Seconds-long end-to-end check of the peer tooling on the tiny synthetic model:
# make_synthetic.py --preset tiny -> export_onnx.py --int8 -> ORT checks against torch ->
# (if build/m3embed exists) convert + a 1-round run_peers.sh on two small shapes.
#   bash perf/peer/selftest.sh [WORKDIR]      (default: a fresh temporary directory)
set -euo pipefail
cd "$(dirname "$0")/../.."
work="${1:-$(mktemp -d /tmp/m3peer.XXXXXX)}"
mkdir -p "$work"
py=/usr/bin/python3
[[ -d perf/peer/node_modules/onnxruntime-node ]] || (cd perf/peer && npm ci --ignore-scripts)
"$py" tools/reference/make_synthetic.py --preset tiny --out "$work/hf" >/dev/null
"$py" tools/reference/export_onnx.py "$work/hf" "$work/onnx" --int8 2>&1 | grep -v -i warning
node perf/peer/ort_bench.mjs --model "$work/onnx/model.onnx" --check "$work/onnx/check.json"
node perf/peer/ort_bench.mjs --model "$work/onnx/model_int8.onnx" --check "$work/onnx/check.json"
bin="${M3_BUILD_DIR:-build}/m3embed"
if [[ -x "$bin" ]]; then
  "$bin" convert "$work/hf" -o "$work/tiny.m3" --dtype f32 -q
  "$bin" quantize "$work/tiny.m3" -o "$work/tiny-int8.m3" -q
  bash perf/run_peers.sh --iters 3 --shapes "1x16 4x64" --no-check --m3 "f32:$work/tiny.m3,int8:$work/tiny-int8.m3" \
    --onnx-dir "$work/onnx" 2>/dev/null
fi
echo "selftest OK ($work)"
