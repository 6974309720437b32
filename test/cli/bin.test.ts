/**
 * The bin as a process, from the TypeScript sources (what `pnpm pickrank` runs): start-up without the
 * heavy modules, exit codes, a real scoring run with its preprocessing workers, and the README's
 * `pnpm -s pickrank …` form from another folder. One process start per test. The built bin (dist/) is
 * checked by .ci/run, which packs and installs the packages and runs it.
 */
import { execFileSync, spawn } from "node:child_process";
import { copyFile, mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnCli, type CliResult } from "../helpers/cli.ts";
import { referenceDir, repoRoot } from "../helpers/paths.ts";
import { removeTinyModels, tinyModel } from "../helpers/tiny-model.ts";

const HEAVY = ["@pickrank/core", "@pickrank/adapters", "@pickrank/selector", "onnxruntime-node", "sharp"];
const forbidHeavy = {
  nodeArgs: ["--import", path.join(repoRoot, "test/helpers/forbid-imports.mjs")],
  env: { PICKRANK_FORBID_IMPORTS: HEAVY.join(",") },
};
const image = path.join(referenceDir, "images", "photo_768.jpg");

let tmp: string;
let model: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-bin-"));
  model = await tinyModel();
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
  await removeTinyModels();
});

describe("the bin", () => {
  it("--help lists the commands without loading core, adapters, selector, onnxruntime-node or sharp", async () => {
    const r = await spawnCli(["--help"], forbidHeavy).done;
    expect(r.code, r.stderr).toBe(0);
    for (const c of ["tokenize", "preprocess", "model", "rank", "best-of"]) expect(r.stdout).toContain(c);
  });

  it("a reader that closes the pipe first (`pickrank --help | head`) ends the command quietly, exit 0, no EPIPE", async () => {
    const p = spawnCli(["--help"]);
    // The reading end goes away before the bin writes: every write of its meets a closed pipe.
    p.proc.stdout!.destroy();
    const r = await p.done;
    expect(r.stderr).not.toMatch(/EPIPE|Unhandled|Error/);
    expect(r.code).toBe(0);
  });

  it("a bad argument exits 2 naming what was expected, before loading anything heavy", async () => {
    const r = await spawnCli(["rank", "--prompt", "x", "--device", "tpu", image], forbidHeavy).done;
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Expected one of auto, cpu, webgpu, cuda but received "tpu"/);
    expect(r.stderr).not.toContain("forbidden import");
  });

  it("rank --json scores through the process (preprocessing workers started from the sources)", async () => {
    const images = [image, path.join(referenceDir, "images", "rgba_512.png")];
    const r = await spawnCli(["rank", "--model", model, "--device", "cpu", "--prompt", "a cat", "--json", ...images]).done;
    expect(r.code, r.stderr).toBe(0);
    const j = r.json<{ results: { file: string; rank: number }[] }>();
    expect(j.results.map((x) => x.rank)).toEqual([1, 2]);
    expect(new Set(j.results.map((x) => x.file))).toEqual(new Set(images));
  });
});

const hasPnpm = (() => {
  try {
    execFileSync("pnpm", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();
const noPnpm = hasPnpm ? "" : " — skipped: pnpm is not on PATH";
if (noPnpm) console.warn(`pnpm -s pickrank tests${noPnpm}`);

/** Runs `pnpm <args>` in `cwd` as a person would, INIT_CWD left for pnpm to set. */
function pnpm(args: string[], cwd: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.INIT_CWD;
    const p = spawn("pnpm", args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    p.on("error", reject);
    p.on("close", (code) =>
      resolve({
        code: code ?? -1,
        stdout,
        stderr,
        json<T>() {
          try {
            return JSON.parse(stdout) as T;
          } catch {
            throw new Error(`stdout is not JSON (exit ${code}):\n${stdout}\nstderr:\n${stderr}`);
          }
        },
      }),
    );
  });
}

describe.skipIf(!hasPnpm)(`the README's form, pnpm -s pickrank${noPnpm}`, () => {
  it("from a subfolder of the repository: only the JSON on stdout, relative paths are the caller's", async () => {
    const cwd = path.join(repoRoot, "test", "cli");
    const rel = path.relative(cwd, image); // ../../../shared/…: wrong if resolved against the repository root
    const r = await pnpm(["-s", "pickrank", "rank", "--model", model, "--device", "cpu", "--prompt", "a cat", "--json", rel], cwd);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trimStart().startsWith("{"), r.stdout).toBe(true);
    expect(r.json<{ results: { file: string }[] }>().results.map((x) => x.file)).toEqual([rel]);
  });

  it("--out with a relative path writes in the folder pnpm was called from (pnpm -C <repo> from outside)", async () => {
    const cwd = await mkdtemp(path.join(tmp, "caller-"));
    await copyFile(image, path.join(cwd, "photo.jpg"));
    const r = await pnpm(["-C", repoRoot, "-s", "pickrank", "preprocess", "photo.jpg", "--out", "px.bin", "--json"], cwd);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json<{ file: string; out: string }>()).toMatchObject({ file: "photo.jpg", out: "px.bin" });
    expect((await readFile(path.join(cwd, "px.bin"))).byteLength).toBe(3 * 224 * 224 * 4);
  });
});
