import { spawn } from "node:child_process";
import path from "node:path";
import { Writable } from "node:stream";
import { main } from "../../packages/cli/src/main.ts";
import type { Io } from "../../packages/cli/src/ui.ts";
import { repoRoot } from "./paths.ts";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  json<T = unknown>(): T;
}

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

/** Runs the CLI in this process (fast): same code path as the bin, output captured. */
export async function runCli(args: string[]): Promise<CliResult> {
  const out = sink();
  const err = sink();
  const io: Io = { stdout: out.stream, stderr: err.stream };
  const code = await main(["node", "pickrank", ...args], io);
  return result(code, out.text(), err.text());
}

/** Runs the real bin in a child process, as users and other programs do. */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(repoRoot, "packages/cli/bin/pickrank.js"), ...args], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve(result(code ?? -1, stdout, stderr)));
  });
}
