/**
 * The one way tests run `pickrank`.
 *
 * - `runCli(args, { env })`: in this process through main(), the code path of the bin, with stdout and
 *   stderr captured. For every test about what a command does.
 * - `spawnCli(args, { env, cwd })`: the bin as a child process, from the TypeScript sources
 *   (packages/cli/bin/pickrank-dev.js under `--conditions=development`, as `pnpm pickrank` runs it). Only
 *   for tests about the process itself (signals, kill -9, start-up, the working folder); one process
 *   start per test, since each start costs about a second on a loaded machine.
 */
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { Writable } from "node:stream";
import { main } from "../../packages/cli/src/main.ts";
import type { Io } from "../../packages/cli/src/ui.ts";
import { repoRoot } from "./paths.ts";

/** What a run printed and how it ended. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON; throws with both streams in the message when it does not parse. */
  json<T = unknown>(): T;
}

/** Environment overrides: a value of undefined removes the variable. */
export type CliEnv = Record<string, string | undefined>;

function sink(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return { stream, text: () => chunks.join("") };
}

function result(code: number, stdout: string, stderr: string): CliResult {
  return {
    code,
    stdout,
    stderr,
    json<T>() {
      try {
        return JSON.parse(stdout) as T;
      } catch {
        throw new Error(`stdout is not JSON (exit ${code}):\n${stdout}\nstderr:\n${stderr}`);
      }
    },
  };
}

/**
 * Runs the CLI in this process and captures its output. `env` is applied to process.env for the run
 * and restored afterwards (the commands read the environment when they run, not when loaded).
 */
export async function runCli(args: string[], opts: { env?: CliEnv } = {}): Promise<CliResult> {
  const out = sink();
  const err = sink();
  const io: Io = { stdout: out.stream, stderr: err.stream };
  const saved = Object.entries(opts.env ?? {}).map(([k, v]) => {
    const before = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
    return [k, before] as const;
  });
  try {
    const code = await main(["node", "pickrank", ...args], io);
    return result(code, out.text(), err.text());
  } finally {
    for (const [k, v] of saved.reverse()) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** The bin from the sources: what `pnpm pickrank` runs. */
export const pickrankDevBin = path.join(repoRoot, "packages/cli/bin/pickrank-dev.js");

/** A running `pickrank` process. */
export interface CliProcess {
  proc: ChildProcess;
  /** What it printed so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when it exits; code is -1 when a signal ended it. */
  done: Promise<CliResult & { signal: NodeJS.Signals | null }>;
}

/**
 * Starts the bin as a child process in `cwd` (default: the repository root), with `nodeArgs` before the
 * script. INIT_CWD, which `pnpm test` sets, is removed unless `env` sets it: the bin would otherwise
 * move to that folder.
 */
export function spawnCli(args: string[], opts: { env?: CliEnv; cwd?: string; nodeArgs?: string[] } = {}): CliProcess {
  const env: NodeJS.ProcessEnv = { ...process.env, INIT_CWD: undefined, ...opts.env };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  const proc = spawn(process.execPath, ["--conditions=development", ...(opts.nodeArgs ?? []), pickrankDevBin, ...args], {
    cwd: opts.cwd ?? repoRoot,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  proc.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  proc.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult & { signal: NodeJS.Signals | null }>((resolve, reject) => {
    proc.on("error", reject);
    proc.on("close", (code, signal) => resolve({ ...result(code ?? -1, stdout, stderr), signal }));
  });
  return { proc, stdout: () => stdout, stderr: () => stderr, done };
}
