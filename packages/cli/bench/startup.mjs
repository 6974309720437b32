#!/usr/bin/env node
// Start-up time of the `pickrank` bin against a bare `node -e 0`: runs each command N times
// (one warm-up run first, not counted) and prints a table of wall times in milliseconds.
//
//   node packages/cli/bench/startup.mjs [runs=20] [-- bin]     (default bin: packages/cli/bin/pickrank.js)
//
// No timing here is asserted anywhere; it is a measurement to read, not a test.
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const sep = args.indexOf("--");
const runs = Number(args[0] && args[0] !== "--" ? args[0] : 20);
const bin = sep >= 0 && args[sep + 1] ? path.resolve(args[sep + 1]) : path.join(here, "..", "bin", "pickrank.js");

const cases = [
  ["node -e 0", [process.execPath, "-e", "0"]],
  ["pickrank --help", [process.execPath, bin, "--help"]],
  ["pickrank rank (bad argument)", [process.execPath, bin, "rank", "--prompt", "x", "--device", "tpu", "a.png"]],
];

function once(argv) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), { stdio: ["ignore", "ignore", "ignore"] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.error) throw r.error;
  return { ms, status: r.status };
}

const rows = [];
for (const [name, argv] of cases) {
  const { status } = once(argv);
  const times = Array.from({ length: runs }, () => once(argv).ms).sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)];
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  rows.push([name, String(status), median.toFixed(0), mean.toFixed(0), times[0].toFixed(0), times.at(-1).toFixed(0)]);
}
const base = Number(rows[0][2]);
const head = ["command", "exit", "median ms", "mean ms", "min ms", "max ms", "median − node -e 0"];
const table = [head, ...rows.map((r) => [...r, `${(Number(r[2]) - base).toFixed(0)} ms`])];
const widths = head.map((_, i) => Math.max(...table.map((r) => r[i].length)));
console.log(`${runs} runs each, ${bin}`);
for (const r of table) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  "));
