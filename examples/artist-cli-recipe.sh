#!/usr/bin/env bash
# Artists: best-of-N from the command line. Needs ComfyUI running (default http://127.0.0.1:8188) or
# Automatic1111 started with --api (add: --backend a1111 --url http://127.0.0.1:7860).
# The first run downloads and converts PickScore (~4 GB) into ~/.cache/pickrank.
set -euo pipefail
cd "$(dirname "$0")/.."

PROMPT=${1:-"a lighthouse at dusk, oil painting"}
OUT=${OUT:-out/lighthouse}

# 1. Eight candidates, keep the best three as PNG (scores in the PNG info), table on screen.
#    Ctrl-C and run it again: it resumes where it stopped.
pnpm -s pickrank best-of --prompt "$PROMPT" -n 8 --top 3 --out "$OUT" ${PICKRANK_ARGS:-}

# 2. Cheap drafts first: 16 candidates at 8 steps, re-render the best 4 at full settings.
pnpm -s pickrank best-of --prompt "$PROMPT" -n 16 --draft-steps 8 --refine 4 --top 2 --out "$OUT-drafted" ${PICKRANK_ARGS:-}

# 3. A prompt list overnight, three different-looking picks per prompt, JSON for your scripts.
#    pnpm -s pickrank best-of --prompts prompts.txt -n 12 --top 3 --diverse --out out/batch --json > out/batch.json
