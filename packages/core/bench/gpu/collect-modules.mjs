// Copies the run-time npm dependencies of the workspace packages out of pnpm's store
// (node_modules/.pnpm, i.e. exactly the versions of pnpm-lock.yaml) into one flat folder of real
// files, because pnpm's node_modules is made of symbolic links, which travel to the device only as
// links. Workspace packages are not copied: run.sh links them to the checkout on the device. Every
// folder of packages/ with a package.json is a root, so a new package's dependencies travel too.
//
//   node packages/core/bench/gpu/collect-modules.mjs <out>/node_modules
//
// Optional dependencies that pnpm did not install (other platforms) are skipped; where two versions of
// one name are needed, the second is nested under the package that needs it (npm's layout).
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";

const repo = path.resolve(import.meta.dirname, "../../../..");
const out = process.argv[2];
if (!out) {
  console.error("usage: collect-modules.mjs <out node_modules dir>");
  process.exit(2);
}

/** Needed only by onnxruntime-node's install script (CUDA download), never at run time. */
const SKIP = new Set(["adm-zip", "global-agent"]);
/**
 * Packages whose dependencies the GPU run never loads and the 64 MiB carry cannot hold: eval (DuckDB's
 * native build, 70 MB, and ECharts, 62 MB) and queue (BullMQ, Redis clients). The CLI imports them
 * lazily, for `pickrank eval` and the queue commands only. KIT_ALL=1 collects them too.
 */
const NOT_ON_DEVICE = process.env.KIT_ALL === "1" ? new Set() : new Set(["packages/eval", "packages/queue"]);
/** Every other workspace package (contract, core, adapters, selector, cli, server, and any added later). */
const ROOTS = readdirSync(path.join(repo, "packages"))
  .map((d) => `packages/${d}`)
  .filter((d) => existsSync(path.join(repo, d, "package.json")) && !NOT_ON_DEVICE.has(d))
  .sort();

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

// Placement as npm's hoisting does it: a package goes to the top level (<out>/<name>) unless another
// version holds that place, then into the node_modules of the package that needs it, where Node's
// lookup from that package finds it first.
const placed = new Map(); // relative dest ("name" or "a/node_modules/name") -> { dir, version, name }
const queue = [];
for (const root of ROOTS) {
  const dir = path.join(repo, root);
  const pj = readJson(path.join(dir, "package.json"));
  for (const name of Object.keys(pj.dependencies ?? {})) {
    if (String(pj.dependencies[name]).startsWith("workspace:")) continue;
    queue.push({ from: dir, name, optional: false, by: root, parent: "" });
  }
}
while (queue.length > 0) {
  const { from, name, optional, by, parent } = queue.shift();
  if (SKIP.has(name)) continue;
  const dir = findDep(from, name);
  if (!dir) {
    if (optional) continue;
    throw new Error(`${name} (needed by ${by}) is not installed under ${from}; run pnpm install first`);
  }
  const pj = readJson(path.join(dir, "package.json"));
  // The place Node's lookup from `parent` reaches first: nested folders up the chain, then the top level.
  let dest;
  for (let p = parent; ; p = p.includes("/node_modules/") ? p.slice(0, p.lastIndexOf("/node_modules/")) : "") {
    const cand = p ? `${p}/node_modules/${name}` : name;
    const there = placed.get(cand);
    if (there) {
      dest = there.dir === dir ? null : undefined; // the same copy is reachable: done; another version: nest
      break;
    }
    if (!p) {
      dest = cand;
      break;
    }
  }
  if (dest === null) continue;
  if (dest === undefined) {
    if (!parent) throw new Error(`two versions of ${name} are needed at the top level (${by})`);
    dest = `${parent}/node_modules/${name}`;
  }
  placed.set(dest, { dir, version: pj.version, name });
  for (const d of Object.keys(pj.dependencies ?? {})) queue.push({ from: dir, name: d, optional: false, by: name, parent: dest });
  for (const d of Object.keys(pj.optionalDependencies ?? {})) queue.push({ from: dir, name: d, optional: true, by: name, parent: dest });
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const lines = [];
for (const [rel, { dir, version, name }] of [...placed].sort(([a], [b]) => a.localeCompare(b))) {
  const dest = path.join(out, rel);
  if (name === "onnxruntime-node") {
    // 300 MB for every platform; only linux/x64 runs on the device.
    for (const part of ["package.json", "dist", "lib", "bin/napi-v6/linux/x64"]) {
      cpSync(path.join(dir, part), path.join(dest, part), { recursive: true, dereference: true });
    }
  } else {
    cpSync(dir, dest, { recursive: true, dereference: true, filter: (src) => path.basename(src) !== "node_modules" });
  }
  lines.push(rel === name ? `${name}@${version}` : `${name}@${version} (under ${rel.slice(0, -name.length - "/node_modules/".length)})`);
}
writeFileSync(path.join(out, ".pickrank-modules.txt"), lines.join("\n") + "\n");
console.log(lines.join("\n"));
