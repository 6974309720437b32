// Copies the run-time npm dependencies of the workspace packages out of pnpm's store
// (node_modules/.pnpm, i.e. exactly the versions of pnpm-lock.yaml) into one flat folder of real
// files, because pnpm's node_modules is made of symbolic links, which travel to the device only as
// links. Workspace packages are not copied: run.sh links them to the checkout on the device.
//
//   node packages/core/bench/gpu/collect-modules.mjs <out>/node_modules
//
// Optional dependencies that pnpm did not install (other platforms) are skipped; two versions of one
// name cannot share a flat folder, so that is an error rather than a silent pick.
import { cpSync, existsSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";

const repo = path.resolve(import.meta.dirname, "../../../..");
const out = process.argv[2];
if (!out) {
  console.error("usage: collect-modules.mjs <out node_modules dir>");
  process.exit(2);
}

/** Needed only by onnxruntime-node's install script (CUDA download), never at run time. */
const SKIP = new Set(["adm-zip", "global-agent"]);
const ROOTS = ["packages/core", "packages/cli", "packages/adapters", "packages/selector"];

const readJson = (f) => JSON.parse(readFileSync(f, "utf8"));

/** Node's lookup: <ancestor>/node_modules/<name>, from the package's real folder upwards. */
function findDep(fromDir, name) {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    if (path.basename(dir) !== "node_modules") {
      const cand = path.join(dir, "node_modules", name);
      if (existsSync(path.join(cand, "package.json"))) return realpathSync(cand);
    }
    if (dir === path.dirname(dir)) return null;
  }
}

const picked = new Map(); // name -> { dir, version }
const queue = [];
for (const root of ROOTS) {
  const dir = path.join(repo, root);
  const pj = readJson(path.join(dir, "package.json"));
  for (const name of Object.keys(pj.dependencies ?? {})) {
    if (String(pj.dependencies[name]).startsWith("workspace:")) continue;
    queue.push({ from: dir, name, optional: false, by: root });
  }
}
while (queue.length > 0) {
  const { from, name, optional, by } = queue.shift();
  if (SKIP.has(name)) continue;
  const dir = findDep(from, name);
  if (!dir) {
    if (optional) continue;
    throw new Error(`${name} (needed by ${by}) is not installed under ${from}; run pnpm install first`);
  }
  const pj = readJson(path.join(dir, "package.json"));
  const seen = picked.get(name);
  if (seen) {
    if (seen.version !== pj.version) {
      throw new Error(`two versions of ${name} are needed (${seen.version} and ${pj.version}); a flat node_modules cannot hold both`);
    }
    continue;
  }
  picked.set(name, { dir, version: pj.version });
  for (const d of Object.keys(pj.dependencies ?? {})) queue.push({ from: dir, name: d, optional: false, by: name });
  for (const d of Object.keys(pj.optionalDependencies ?? {})) queue.push({ from: dir, name: d, optional: true, by: name });
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const lines = [];
for (const [name, { dir, version }] of [...picked].sort(([a], [b]) => a.localeCompare(b))) {
  const dest = path.join(out, name);
  if (name === "onnxruntime-node") {
    // 300 MB for every platform; only linux/x64 runs on the device.
    for (const part of ["package.json", "dist", "lib", "bin/napi-v6/linux/x64"]) {
      cpSync(path.join(dir, part), path.join(dest, part), { recursive: true, dereference: true });
    }
  } else {
    cpSync(dir, dest, { recursive: true, dereference: true, filter: (src) => path.basename(src) !== "node_modules" });
  }
  lines.push(`${name}@${version}`);
}
writeFileSync(path.join(out, ".pickrank-modules.txt"), lines.join("\n") + "\n");
console.log(lines.join("\n"));
