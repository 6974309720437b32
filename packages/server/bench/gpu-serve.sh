#!/usr/bin/env bash
# `pnpm bench:serve` on a lent GPU machine (no Node.js, no network there): unpacks the carry that
# packages/core/bench/gpu/prepare.sh builds, installs the Vulkan/GL loaders, writes a PickScore-sized
# random checkpoint, converts it to fp16, and runs packages/server/bench/serve.ts on WebGPU.
#
#   device call: command `bash packages/server/bench/gpu-serve.sh`, carry [".gpu-carry"]
#
# Environment: OUT (tables and log), WORK (scratch, default /tmp/pickrank-serve-gpu), SIZE
# (make-random-clip size, default pickscore), REQUESTS (default 1000), MAX_S (bench bound, default 240).
set -u -o pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd -P)"
cd "$repo" || exit 1
OUT="${OUT:-/tmp/pickrank-serve-gpu-out}"
WORK="${WORK:-/tmp/pickrank-serve-gpu}"
SIZE="${SIZE:-pickscore}"
CARRY="$repo/.gpu-carry"
mkdir -p "$OUT" "$WORK/node/bin"
exec > >(tee -a "$OUT/serve-gpu.log") 2>&1
say() { echo "[$(date -u +%T) +${SECONDS}s] $*"; }

say "unpack node and node_modules"
xz -dc "$CARRY/node.xz" >"$WORK/node/bin/node" && chmod +x "$WORK/node/bin/node" || exit 1
[[ -e node_modules && ! -f node_modules/.pickrank-modules.txt ]] && { echo "node_modules exists and is not the carried one"; exit 1; }
rm -rf node_modules && xz -dc "$CARRY/node_modules.tar.xz" | tar -x -f - || exit 1
mkdir -p node_modules/@pickrank
for d in packages/*/; do
  name="$(basename "$d")"
  [[ "$name" == cli ]] && ln -sfn ../packages/cli node_modules/pickrank || ln -sfn "../../packages/$name" "node_modules/@pickrank/$name"
done
export PATH="$WORK/node/bin:$PATH"
hash -r
node -e 'require("sharp"); require("onnxruntime-node"); require("fastify"); console.log("node", process.version, "modules load")' || exit 1

say "Vulkan and GL loaders"
for f in "$CARRY"/debs/*.deb; do dpkg -x "$f" / || exit 1; done
ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[[ -f "$icd" ]] && export VK_DRIVER_FILES="$icd"
[[ -f "$egl" ]] && export __EGL_VENDOR_LIBRARY_FILENAMES="$egl"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | sed 's/^/gpu: /'
echo "host: $(nproc) cores"

say "model: random weights of size $SIZE, fp16"
ts=(node --import tsx)
timeout 200 "${ts[@]}" packages/core/bench/make-random-clip.ts --size "$SIZE" --out "$WORK/hf" || exit 1
timeout 200 node packages/cli/bin/pickrank.js model convert "$WORK/hf" --out "$WORK/fp16" --dtype fp16 >/dev/null || exit 1
rm -rf "$WORK/hf"

say "bench:serve on webgpu"
timeout $((${MAX_S:-240} + 120)) "${ts[@]}" packages/server/bench/serve.ts --model "$WORK/fp16" --device webgpu \
  --requests "${REQUESTS:-1000}" --baseline-calls 50 --max-seconds "${MAX_S:-240}" | tee "$OUT/bench-serve-webgpu.txt"
say "done: exit ${PIPESTATUS[0]}"
