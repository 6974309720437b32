#!/usr/bin/env bash
# The GPU benchmark of docs/benchmarks.md ("To run on a GPU") in one call on the lent device machine,
# which has CUDA, python3 with torch + transformers, but no Node.js and no network. Everything else
# comes in .gpu-carry/ (built here by prepare.sh). Run from the repo root:
#
#   bash packages/core/bench/gpu/run.sh
#
# Environment (all optional):
#   OUT       where logs and tables go (the device tool sets it; default /tmp/pickrank-gpu-out)
#   SIZE      make-random-clip size: pickscore (default), base or small (quick plumbing runs)
#   BUDGET_S  seconds for the whole script (default 480); each step is cut to what is left
#   WORK      scratch folder for the checkpoint and the converted models (default /tmp/pickrank-gpu)
#   GL_ROOT   where the loader .debs are unpacked (default /, then ldconfig; elsewhere, for a dry
#             run on a machine whose / must not change, LD_LIBRARY_PATH points at it instead)
#   CARRY     the carry folder (default .gpu-carry at the repo root)
#
# Files in $OUT (the device returns at most 8): run.log (everything), summary.md (step table and all
# tables), env.txt, bench-fp16-webgpu.md (fused vs standard, N 8 and 32), bench-fp16-webgpu-b64.md
# (vision batch 64), bench-fp32-webgpu.md, bench-fp32-cpu.md, ref-timing.txt (torch fp16: vision batch
# 8 and 64, then ref_timing.py end to end N 8 and 32).
# Every step's exit code is reported; a failed step does not stop the next one.
set -u -o pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
repo="$(cd "$here/../../../.." && pwd -P)"
cd "$repo" || exit 1
OUT="${OUT:-/tmp/pickrank-gpu-out}"
SIZE="${SIZE:-pickscore}"
BUDGET_S="${BUDGET_S:-480}"
WORK="${WORK:-/tmp/pickrank-gpu}"
GL_ROOT="${GL_ROOT:-/}"
CARRY="${CARRY:-$repo/.gpu-carry}"
mkdir -p "$OUT" "$WORK"
: >"$OUT/run.log"
exec > >(tee -a "$OUT/run.log") 2>&1
tee_pid=$!

SECONDS=0
declare -a STEPS=()
say() { echo "[$(date -u +%T) +${SECONDS}s] $*"; }
record() { STEPS+=("| $1 | $2 | $3 | $4 |"); say "step $1: $2 (${3}s) $4"; }

# step NAME LIMIT_S OUTFILE|- CMD...: runs CMD under `timeout`, cut to the budget left; stdout also
# goes to OUTFILE; records the exit code and carries on whatever happens.
step() {
  local name=$1 limit=$2 outfile=$3
  shift 3
  local left=$((BUDGET_S - SECONDS))
  if ((left < 15)); then
    record "$name" "skipped" 0 "budget of ${BUDGET_S}s spent"
    return 1
  fi
  ((limit > left)) && limit=$left
  say "=== $name (limit ${limit}s): $*"
  local t0=$SECONDS rc
  if declare -F "$1" >/dev/null; then
    # Shell functions (setup, loaders, env) must change this shell's environment: no timeout; quick.
    if [[ "$outfile" == "-" ]]; then "$@"; rc=$?; else "$@" > >(tee "$outfile"); rc=$?; fi
  elif [[ "$outfile" == "-" ]]; then
    timeout -k 10 "$limit" "$@"
    rc=$?
  else
    timeout -k 10 "$limit" "$@" | tee "$outfile"
    rc=${PIPESTATUS[0]}
  fi
  local status="exit $rc"
  ((rc == 0)) && status="ok"
  ((rc == 124 || rc == 137)) && status="TIMED OUT after ${limit}s (exit $rc)"
  local note=""
  if [[ "$outfile" != "-" && -f "$outfile" ]]; then
    # The bench's rows for devices that did not start: "| webgpu | — | … | unavailable: why |".
    note="$(grep -E '^\| *[a-z]+ +\| — ' "$outfile" | awk -F'|' '{gsub(/^ +| +$/, "", $2); gsub(/^ +| +$/, "", $7); printf "%s %s; ", $2, $7}')"
  fi
  record "$name" "$status" $((SECONDS - t0)) "$note"
  return "$rc"
}

say "pickrank GPU bench: repo $repo, SIZE=$SIZE, BUDGET_S=$BUDGET_S, OUT=$OUT, WORK=$WORK"

# ---- 1. unpack what travelled -------------------------------------------------------------------
node_ok=0
setup() {
  [[ -d "$CARRY" ]] || { echo "no carry folder at $CARRY: build it with prepare.sh and name .gpu-carry in carry"; return 1; }
  sed -n '1,2p' "$CARRY/MANIFEST.txt" 2>/dev/null
  local unxz
  if command -v xz >/dev/null; then unxz=(xz -dc); else
    echo "(no xz here: decompressing with python3's lzma)"
    unxz=(python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)')
  fi
  mkdir -p "$WORK/node/bin"
  "${unxz[@]}" "$CARRY/node.xz" >"$WORK/node/bin/node" && chmod +x "$WORK/node/bin/node" || return 1
  # node_modules at the repo root, where Node's lookup finds it from every package. Never over pnpm's.
  if [[ -e node_modules && ! -f node_modules/.pickrank-modules.txt ]]; then
    echo "node_modules exists and is not the carried one (pnpm's?): refusing to replace it"
    return 1
  fi
  rm -rf node_modules
  "${unxz[@]}" "$CARRY/node_modules.tar.xz" | tar -x -f - || return 1
  # Every workspace package under its package.json name (@pickrank/contract, …, pickrank for the CLI).
  local pj name
  for pj in packages/*/package.json; do
    name="$(sed -n 's/^  "name": "\(.*\)",$/\1/p' "$pj" | head -n 1)"
    [[ -n "$name" ]] || { echo "no name in $pj"; return 1; }
    mkdir -p "node_modules/$(dirname "$name")"
    ln -sfn "$repo/$(dirname "$pj")" "node_modules/$name"
    echo "linked $name -> $(dirname "$pj")"
  done
  export PATH="$WORK/node/bin:$PATH"
  hash -r
  echo "node: $(command -v node) $(node -v)"
  [[ "$(command -v node)" == "$WORK/node/bin/node" ]] || { echo "the carried node is not first on PATH"; return 1; }
  node -e 'require("sharp"); require("onnxruntime-node"); console.log("sharp and onnxruntime-node load")' || return 1
}
# Vulkan and GL loaders for the WebGPU provider (Dawn over Vulkan; NVIDIA's ICD needs the GL loaders).
loaders() {
  local have=1 lib
  for lib in libvulkan.so.1 libEGL.so.1 libGLX.so.0; do ldconfig -p | grep -q "$lib" || have=0; done
  if ((have)) && [[ "$GL_ROOT" == / ]]; then echo "Vulkan and GL loaders already installed"; else
    local f
    mkdir -p "$GL_ROOT"
    for f in "$CARRY"/debs/*.deb; do dpkg -x "$f" "$GL_ROOT" || return 1; done
    if [[ "$GL_ROOT" == / ]]; then ldconfig; else
      export LD_LIBRARY_PATH="$GL_ROOT/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      echo "loaders unpacked under $GL_ROOT (LD_LIBRARY_PATH), not installed in /"
    fi
  fi
  local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  if [[ -f "$icd" ]]; then export VK_DRIVER_FILES="$icd"; echo "VK_DRIVER_FILES=$icd"; else echo "no NVIDIA Vulkan ICD at $icd (WebGPU will find no GPU)"; fi
  if [[ -f "$egl" ]]; then export __EGL_VENDOR_LIBRARY_FILENAMES="$egl"; echo "__EGL_VENDOR_LIBRARY_FILENAMES=$egl"; fi
  ldconfig -p | grep -E "libvulkan|libEGL\.|libGLX\." | sed 's/^/  /'
  [[ "$GL_ROOT" == / ]] || ls "$GL_ROOT/usr/lib/x86_64-linux-gnu" | sed 's/^/  /'
}
envinfo() {
  echo "date: $(date -u +%FT%TZ)"
  echo "host: $(uname -srm), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | sed 's/^/gpu: /'
  else echo "gpu: none (no nvidia-smi)"; fi
  command -v node >/dev/null && echo "node: $(node -v) at $(command -v node)"
  echo "python3: $(python3 -c 'import sys; print(sys.version.split()[0], sys.executable)' 2>&1)"
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "transformers", transformers.__version__)' 2>&1 | tail -n 1
  echo "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')"
  sed -n '/^modules:/,/^files:/p' "$CARRY/MANIFEST.txt" 2>/dev/null | grep -v '^files:'
}

step setup 120 - setup && node_ok=1
step loaders 60 - loaders
step env 30 "$OUT/env.txt" envinfo

export PYTHONUNBUFFERED=1
ts=(node --import tsx) # one process (the tsx CLI would add a parent); run from the repo root
hf="$WORK/hf-$SIZE"
fp32="$WORK/onnx-$SIZE-fp32"
fp16="$WORK/onnx-$SIZE-fp16"
# when FLAG REASON NAME LIMIT OUTFILE CMD...: the step if FLAG is 1, else NAME is recorded as skipped.
when() {
  local ok=$1 why=$2
  shift 2
  if ((ok)); then step "$@"; else
    record "$1" "skipped" 0 "$why"
    return 1
  fi
}
made=0 have_fp32=0 have_fp16=0 probe_made=0 probe_ok=0
# ---- 2. the model: random weights of PickScore's size, converted by the CLI -------------------------
rm -rf "$hf" "$fp32" "$fp16"
when $node_ok "node did not start" make-random-clip 150 - "${ts[@]}" "$repo/packages/core/bench/make-random-clip.ts" --size "$SIZE" --out "$hf" && made=1
# fp16 (with its fused variant) first: the WebGPU figures need it; fp32 is converted later, for the last steps.
when $made "no checkpoint" "convert fp16" 150 - node packages/cli/bin/pickrank.js model convert "$hf" --out "$fp16" --dtype fp16 && have_fp16=1
du -sh "$hf" "$fp32" "$fp16" 2>/dev/null
# ---- 3. can WebGPU start? (a small model: seconds, and the whole error if not) ---------------------
probe="$WORK/onnx-probe"
rm -rf "$WORK/hf-probe" "$probe" "$probe-fp16"
when $node_ok "node did not start" "probe model" 60 - "${ts[@]}" "$repo/packages/core/bench/make-random-clip.ts" --size small --out "$WORK/hf-probe" && probe_made=1
when $probe_made "no probe checkpoint" "probe convert" 60 - node packages/cli/bin/pickrank.js model convert "$WORK/hf-probe" --out "$probe" && probe_ok=1
when $probe_ok "no probe model" "probe webgpu" 90 - "${ts[@]}" "$here/probe.ts" --model "$probe" --devices webgpu,auto --graphs auto,fused --against "$probe"
# fp16 kernels on the GPU against fp32 on the CPU, same weights: numbers the CPU machines cannot give.
when $probe_made "no probe checkpoint" "probe convert fp16" 60 - node packages/cli/bin/pickrank.js model convert "$WORK/hf-probe" --out "$probe-fp16" --dtype fp16 &&
  when $probe_ok "no probe model" "parity fp16 webgpu (small)" 60 - "${ts[@]}" "$here/probe.ts" --model "$probe-fp16" --devices webgpu --graphs auto,fused,standard --against "$probe"
# ---- 4. benchmarks: WebGPU fp16 first (the figures that are missing), the slow CPU last and short ---
# Fused (fused-no-mha: what auto runs on WebGPU; fused: with MultiHeadAttention, which misses the reference on
# SwiftShader, see the parity probes above) against standard graphs in the same process (bench.ts --graphs):
# end to end (PNG bytes → scores) and the vision graph alone, N = 8 and 32; then the vision tower at batch 64.
when $have_fp16 "no fp16 model" "bench fp16 webgpu fused vs standard" 200 "$OUT/bench-fp16-webgpu.md" "${ts[@]}" packages/core/bench/bench.ts \
  --model "$fp16" --devices webgpu --graphs fused-no-mha,fused,standard --n 8,32 --repeats 3 --skip-preprocess
when $have_fp16 "no fp16 model" "vision batch 64 fp16 webgpu" 150 "$OUT/bench-fp16-webgpu-b64.md" "${ts[@]}" packages/core/bench/bench.ts \
  --model "$fp16" --devices webgpu --graphs fused-no-mha,fused,standard --n 64 --batch-size 64 --repeats 3 --skip-preprocess
# The references need the GPU's python, not node: they run even when node could not start.
ref=""
for c in "$repo/../shared/fixtures/pickscore-reference/generator/ref_timing.py" \
  "$repo/shared/fixtures/pickscore-reference/generator/ref_timing.py" "$CARRY/ref_timing.py"; do
  [[ -f "$c" ]] && { ref="$c"; break; }
done
if ! why="$(python3 -c 'import torch, transformers, PIL, numpy; assert torch.cuda.is_available(), "torch sees no CUDA device"' 2>&1)"; then
  echo "ref_timing.py and torch_vision.py skipped: $(echo "$why" | tail -n 1)" | tee "$OUT/ref-timing.txt"
  record "torch references" "skipped" 0 "python3 lacks torch+CUDA/transformers: $(echo "$why" | tail -n 1)"
else
  # torch fp16, vision tower alone at batch 8 and 64: the throughput goal's baseline (same file as ref_timing's lines).
  step "torch_vision.py" 90 "$WORK/torch-vision.txt" python3 "$here/torch_vision.py" --batches 8,64
  if [[ -z "$ref" ]]; then record ref_timing.py "skipped" 0 "not found in ../shared, shared/ or the carry"; else
    step ref_timing.py 150 "$WORK/ref-e2e.txt" python3 "$ref"
  fi
  cat "$WORK/torch-vision.txt" "$WORK/ref-e2e.txt" >"$OUT/ref-timing.txt" 2>/dev/null
fi
when $made "no checkpoint" "convert fp32" 150 - node packages/cli/bin/pickrank.js model convert "$hf" --out "$fp32" && have_fp32=1
when $have_fp32 "no fp32 model" "bench fp32 webgpu" 180 "$OUT/bench-fp32-webgpu.md" "${ts[@]}" packages/core/bench/bench.ts --model "$fp32" --devices webgpu --graphs fused-no-mha,fused,standard --n 8,32 --repeats 3 --skip-preprocess
# The full-depth fp16 error (32 vision layers): last, as it loads the fp32 model on the CPU too.
both=$((have_fp16 && have_fp32))
when $both "no fp16 or fp32 model" "parity fp16 webgpu (pickscore size)" 150 - "${ts[@]}" "$here/probe.ts" --model "$fp16" --devices webgpu --graphs auto,fused --against "$fp32" --images 4
when $have_fp32 "no fp32 model" "bench fp32 cpu" 150 "$OUT/bench-fp32-cpu.md" "${ts[@]}" packages/core/bench/bench.ts --model "$fp32" --devices cpu --n 8 --repeats 1 --skip-preprocess

# ---- 5. summary ---------------------------------------------------------------------------------
{
  echo "# pickrank GPU bench, $(date -u +%FT%TZ), SIZE=$SIZE, ${SECONDS}s"
  echo
  grep -E "^(gpu|host|node|python3|torch|commit):" "$OUT/env.txt" 2>/dev/null | sed 's/^/    /'
  echo
  echo "| step | result | s | note |"
  echo "| --- | --- | --- | --- |"
  printf '%s\n' "${STEPS[@]}"
  for f in bench-fp16-webgpu bench-fp16-webgpu-b64 bench-fp32-webgpu bench-fp32-cpu; do
    [[ -s "$OUT/$f.md" ]] || continue
    echo
    echo "## $f"
    cat "$OUT/$f.md"
  done
  if grep -qE '^(parity|reference:)' "$OUT/run.log"; then
    echo
    echo "## parity: the device's scores against fp32 on the CPU provider (same weights)"
    echo '```'
    grep -E '^(parity|reference:)' "$OUT/run.log"
    echo '```'
  fi
  if [[ -s "$OUT/ref-timing.txt" ]]; then
    echo
    echo "## torch_vision.py and ref_timing.py (PyTorch fp16, same machine)"
    echo '```'
    cat "$OUT/ref-timing.txt"
    echo '```'
  fi
} >"$OUT/summary.md"
echo
echo "================================ summary ================================"
cat "$OUT/summary.md"
failed=$(printf '%s\n' "${STEPS[@]}" | grep -cvE '\| (ok|skipped) \|')
echo
say "done: ${#STEPS[@]} steps, $failed not ok"
exec >&- 2>&-
wait "$tee_pid" 2>/dev/null
exit $((failed > 0 ? 1 : 0))
