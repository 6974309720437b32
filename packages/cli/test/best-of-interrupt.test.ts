/**
 * `pickrank best-of` interrupted: kill -9 mid-run then resume, and Ctrl-C. The command runs as a
 * child process through the package's bin against a slow fake ComfyUI.
 */
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeComfyUI, type FakeComfyUI } from "../../../test/fakes/comfyui-server.ts";
import { tinyModel } from "../../../test/helpers/tiny-model.ts";
import { waitFor } from "../../../test/helpers/async.ts";
import { comfySettings, journalCandidates } from "../../../test/helpers/best-of.ts";
import { runCli, spawnCli } from "../../../test/helpers/cli.ts";

let model: string;
let tmp: string;
const servers: FakeComfyUI[] = [];

beforeAll(async () => {
  model = await tinyModel();
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-bestof-int-"));
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close().catch(() => {})));
  await rm(tmp, { recursive: true, force: true });
});

async function comfy(opts: Parameters<typeof startFakeComfyUI>[0] = {}): Promise<FakeComfyUI> {
  const s = await startFakeComfyUI(opts);
  servers.push(s);
  return s;
}

const base = () => ["best-of", "--model", model, "--device", "cpu"];

interface JsonResult {
  seeds: number[];
  ranked: { seed: number }[];
  out?: { resumed: number };
}

describe("pickrank best-of interrupted", () => {
  it("resumes after kill -9: a re-run renders only the missing candidates", async () => {
    const fake = await comfy({ stepDelayMs: 15 });
    const out = path.join(tmp, "killed");
    const args = [...base(), "--prompt", "a slow render", "-n", "6", "--url", fake.url, "--out", out, "--quiet"];
    const child = spawnCli(args);
    await waitFor(async () => (await journalCandidates(out)) >= 2, "two finished candidates in the journal");
    child.proc.kill("SIGKILL");
    await child.done;
    const done = await journalCandidates(out);
    expect(done).toBeGreaterThanOrEqual(2);
    expect(done).toBeLessThan(6);
    const queuedBefore = fake.prompts.length;
    const r = await runCli([...args, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as JsonResult;
    expect(j.ranked).toHaveLength(6);
    expect(j.out!.resumed).toBe(done);
    // The second run asked the server only for the seeds that had not finished.
    const resent = fake.prompts.slice(queuedBefore).map((p) => comfySettings(p.prompt).seed);
    expect(resent).toHaveLength(6 - done);
    expect(new Set(j.seeds)).toEqual(new Set([...resent, ...j.ranked.filter((c) => !resent.includes(c.seed)).map((c) => c.seed)]));
  });

  it("Ctrl-C cancels cleanly (exit 130) and tells how to resume", async () => {
    const fake = await comfy({ stepDelayMs: 15 });
    const out = path.join(tmp, "ctrl-c");
    const child = spawnCli([...base(), "--prompt", "cancel me", "-n", "8", "--url", fake.url, "--out", out]);
    await waitFor(async () => (await journalCandidates(out)) >= 1, "a finished candidate");
    child.proc.kill("SIGINT");
    const { code } = await child.done;
    expect(code).toBe(130);
    expect(child.stderr()).toContain("run the same command again to resume");
    expect(child.stderr()).toContain("[ABORTED]");
    expect(await journalCandidates(out)).toBeLessThan(8);
    await expect(readFile(path.join(out, "result.json"))).rejects.toThrow();
  });

  it("SIGTERM cancels like Ctrl-C: our prompts leave the server's queue, the lock goes, the journal keeps every finished candidate and a rerun resumes", async () => {
    const fake = await comfy({ stepDelayMs: 25 });
    const out = path.join(tmp, "sigterm");
    const args = [...base(), "--prompt", "terminate me", "-n", "8", "--seed", "500", "--url", fake.url, "--out", out];
    const child = spawnCli(args);
    await waitFor(async () => (await journalCandidates(out)) >= 1, "a finished candidate");
    child.proc.kill("SIGTERM");
    const { code, signal } = await child.done;
    expect({ code, signal }, child.stderr()).toEqual({ code: 130, signal: null });
    expect(child.stderr()).toContain("cancelling (SIGTERM)");
    expect(child.stderr()).toContain("run the same command again to resume");
    await expect(stat(path.join(out, ".pickrank", "lock"))).rejects.toMatchObject({ code: "ENOENT" });
    // Right after the exit: nothing of ours waits in the queue, and the one rendering was interrupted.
    const queue = (await (await fetch(`${fake.url}/queue`)).json()) as { queue_running: unknown[][]; queue_pending: unknown[][] };
    expect(queue.queue_pending).toEqual([]);
    const interrupted = new Set(fake.interrupts.map((i) => i.promptId));
    for (const row of queue.queue_running) expect(interrupted.has(row[1] as string)).toBe(true);
    expect(fake.deleted.length + fake.interrupts.length).toBeGreaterThan(0);
    const done = await journalCandidates(out);
    expect(done).toBeGreaterThanOrEqual(1);
    expect(done).toBeLessThan(8);
    const queuedBefore = fake.prompts.length;
    const r = await runCli([...args, "--json", "--quiet"]);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as JsonResult).out!.resumed).toBe(done);
    expect(fake.prompts.length - queuedBefore).toBe(8 - done);
  });

  it("one Ctrl-C delivered twice (the terminal's and a wrapper's forwarded copy, as under pnpm) still cancels cleanly", async () => {
    const fake = await comfy({ stepDelayMs: 25 });
    const out = path.join(tmp, "double-int");
    const child = spawnCli([...base(), "--prompt", "twice", "-n", "8", "--url", fake.url, "--out", out]);
    await waitFor(async () => (await journalCandidates(out)) >= 1, "a finished candidate");
    child.proc.kill("SIGINT");
    child.proc.kill("SIGINT");
    const { code } = await child.done;
    expect(code).toBe(130);
    expect(child.stderr()).toContain("run the same command again to resume");
    expect(child.stderr()).not.toContain("quitting now");
    await expect(stat(path.join(out, ".pickrank", "lock"))).rejects.toMatchObject({ code: "ENOENT" });
    const queue = (await (await fetch(`${fake.url}/queue`)).json()) as { queue_pending: unknown[] };
    expect(queue.queue_pending).toEqual([]);
  });
});
