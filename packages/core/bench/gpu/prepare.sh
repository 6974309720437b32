#!/usr/bin/env bash
# Builds .gpu-carry/ at the repo root: everything run.sh needs on the GPU machine, which has no
# Node.js and no network. Runs HERE (x86-64 Linux with the workspace installed by pnpm, and the
# Debian registry reachable for the loader .debs). See README.md beside this file.
#
#   bash packages/core/bench/gpu/prepare.sh
#
# Writes:
#   .gpu-carry/node.xz                this machine's node binary
#   .gpu-carry/node_modules.tar.xz    flat node_modules of real files (collect-modules.mjs), the
#                                     versions of pnpm-lock.yaml, onnxruntime-node pruned to linux/x64
#   .gpu-carry/debs/*.deb             Vulkan and GL loaders (../shared/gpu/README.md)
#   .gpu-carry/ref_timing.py          the Python reference timing (../shared does not travel)
#   .gpu-carry/MANIFEST.txt           what is inside, versions, sizes, sha256
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
repo="$(cd "$here/../../../.." && pwd -P)"
carry="$repo/.gpu-carry"
limit_mib=${CARRY_LIMIT_MIB:-60} # the device takes 64 MiB with the working tree; leave room for it
ref_src="$repo/../shared/fixtures/pickscore-reference/generator/ref_timing.py"

[[ "$(uname -m)" == x86_64 ]] || { echo "prepare.sh: must run on x86-64 (the device is x86-64), not $(uname -m)" >&2; exit 1; }
node_bin="$(command -v node)" || { echo "prepare.sh: node not found on PATH" >&2; exit 1; }
node_bin="$(readlink -f "$node_bin")"
# Debian's own nodejs links libnode.so, which would not travel; the official build is self-contained.
if ldd "$node_bin" | grep -q libnode; then
  echo "prepare.sh: $node_bin links libnode.so; use an official Node.js build" >&2
  exit 1
fi
[[ -d "$repo/node_modules/.pnpm" ]] || { echo "prepare.sh: run pnpm install in $repo first" >&2; exit 1; }
git -C "$repo" check-ignore -q .gpu-carry/x || { echo "prepare.sh: .gpu-carry/ must be ignored by git (it travels as carry)" >&2; exit 1; }

stage="$(mktemp -d /tmp/pickrank-carry.XXXXXX)"
trap 'rm -rf "$stage"' EXIT
rm -rf "$carry.new"
mkdir -p "$carry.new/debs"

echo "== node $("$node_bin" -v) from $node_bin"
xz -9 -T0 -c "$node_bin" >"$carry.new/node.xz"

echo "== node_modules (from node_modules/.pnpm)"
node "$here/collect-modules.mjs" "$stage/node_modules" >"$stage/modules.txt"
# Same versions as the lock file: collect-modules copies pnpm's store, so this only guards against
# a store that is out of date with pnpm-lock.yaml.
while read -r spec _; do # "name@version" or "name@version (under parent)"
  grep -qF -- "$spec" "$repo/pnpm-lock.yaml" || { echo "prepare.sh: $spec is not in pnpm-lock.yaml; run pnpm install" >&2; exit 1; }
done <"$stage/modules.txt"
sed 's/^/   /' "$stage/modules.txt"
tar -C "$stage" -cf - node_modules | xz -9 -T0 >"$carry.new/node_modules.tar.xz"

echo "== Vulkan and GL loaders (Debian bookworm, amd64)"
lists="$stage/apt-lists"
mkdir -p "$lists/partial"
o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists" -oDebug::NoLocking=1)
apt-get "${o[@]}" -qq update
(cd "$carry.new/debs" && apt-get "${o[@]}" -qq download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 2>&1 |
  grep -v "unsandboxed as root" || true)
n_debs=$(ls "$carry.new/debs"/*.deb | wc -l)
[[ $n_debs -eq 7 ]] || { echo "prepare.sh: expected 7 loader .debs, got $n_debs" >&2; exit 1; }

echo "== ref_timing.py"
if [[ -f "$ref_src" ]]; then
  cp "$ref_src" "$carry.new/ref_timing.py"
else
  echo "   (not found at $ref_src: run.sh will look for it in ../shared and shared/ only)"
fi

{
  echo "pickrank GPU carry, built $(date -u +%FT%TZ) from commit $(git -C "$repo" rev-parse --short HEAD)"
  echo "node $("$node_bin" -v) ($(uname -m))"
  echo "modules:"
  sed 's/^/  /' "$stage/modules.txt"
  echo "files:"
  (cd "$carry.new" && find . -type f ! -name MANIFEST.txt | sort | xargs sha256sum | sed 's/^/  /')
} >"$carry.new/MANIFEST.txt"

rm -rf "$carry"
mv "$carry.new" "$carry"
bytes=$(du -sb "$carry" | cut -f1)
echo "== .gpu-carry: $((bytes / 1024 / 1024)) MiB ($bytes bytes)"
(cd "$carry" && du -ab . | sort -n | tail -n 6 | sed 's/^/   /')
if ((bytes > limit_mib * 1024 * 1024)); then
  echo "prepare.sh: .gpu-carry is over ${limit_mib} MiB; the device takes 64 MiB with the working tree" >&2
  exit 1
fi
