/**
 * What a run reports beyond the ranking: partial or complete, failures grouped by cause, warnings
 * (the backend's and settings that do nothing), seeds within the backend's range, the resume check
 * on the backend's fingerprint, and filesystem errors that name the option and the path.
 */
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PickrankError } from "@pickrank/contract";
import { bestOf, groupFailures, randomSeed, type BestOfEvent, type FailedCandidate } from "@pickrank/selector";
import { MemoryBackend } from "../helpers/memory-backend.ts";
import { testScorer } from "./scorer.ts";

let scorer: Awaited<ReturnType<typeof testScorer>>;
let tmp: string;

beforeAll(async () => {
  scorer = await testScorer();
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-outcome-"));
});
afterAll(async () => {
  await scorer.dispose();
  await rm(tmp, { recursive: true, force: true });
});

async function rejection(p: Promise<unknown>): Promise<PickrankError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(PickrankError);
  return e as PickrankError;
}

describe("bestOf outcome", () => {
  it("a run where every candidate survived is complete", async () => {
    const r = await bestOf({ prompt: "p", n: 3, seed: 1, backend: new MemoryBackend(), scorer });
    expect(r).toMatchObject({ outcome: "complete", failures: [], minSurvivors: null });
  });

  it("lost candidates make it partial, grouped by cause with counts and seeds; minSurvivors is recorded when it accepted them", async () => {
    const backend = new MemoryBackend({ failSeeds: [11, 12], garbageSeeds: [14] });
    const r = await bestOf({ prompt: "p", n: 6, seed: 10, backend, scorer });
    expect(r.outcome).toBe("partial");
    expect(r.ranked).toHaveLength(3);
    // "render of seed 11 failed" and "… seed 12 …" differ only in the seed: one cause.
    expect(r.failures.map((g) => [g.code, g.count, g.seeds])).toEqual([
      ["BACKEND_REJECTED", 2, [11, 12]],
      ["BAD_IMAGE", 1, [14]],
    ]);
    expect(r.failed.every((f) => f.ok === false && f.key === String(f.index) && f.phase === "final")).toBe(true);
    const accepted = await bestOf({ prompt: "p", n: 6, seed: 10, backend, scorer, minSurvivors: 3 });
    expect(accepted).toMatchObject({ outcome: "partial", minSurvivors: 3 });
    const e = await rejection(bestOf({ prompt: "p", n: 6, seed: 10, backend, scorer, minSurvivors: 4 }));
    expect(e.code).toBe("TOO_FEW_CANDIDATES");
    expect(e.message).toContain(
      "but 3 of 6 survived (minSurvivors 4); failures: 2 × BACKEND_REJECTED: render of seed 11 failed (seeds 11, 12); 1 × BAD_IMAGE",
    );
  });

  it("a batch with a failed prompt is partial; with none left it is failed", async () => {
    const backend = new MemoryBackend({ failSeeds: [0, 1] });
    const r = await bestOf({ prompts: ["a", "b"], n: 2, seed: 0, backend, scorer });
    expect(r.outcome).toBe("failed");
    const ok = await bestOf({ prompts: ["a", "b"], n: 3, seed: 0, backend, scorer, minSurvivors: 1 });
    expect(ok.outcome).toBe("partial");
    expect(ok.runs.every((x) => x.outcome === "partial")).toBe(true);
  });

  it("groupFailures keeps different causes apart and ignores the seed and the server's prompt id inside a message", () => {
    const f = (index: number, seed: number, code: "BACKEND_REJECTED" | "TIMEOUT", message: string, promptId?: string): FailedCandidate => ({
      ok: false,
      key: String(index),
      index,
      seed,
      backend: "b",
      phase: "final",
      error: new PickrankError(code, message, promptId ? { details: { promptId } } : {}),
    });
    const g = groupFailures([
      f(
        0,
        1,
        "BACKEND_REJECTED",
        "comfyui@http://127.0.0.1:1 failed prompt aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa at KSampler #3: OOM",
        "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa",
      ),
      f(
        1,
        2,
        "BACKEND_REJECTED",
        "comfyui@http://127.0.0.1:1 failed prompt bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb at KSampler #3: OOM",
        "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb",
      ),
      f(2, 3, "TIMEOUT", "sent nothing for 100 ms"),
      f(3, 4, "BACKEND_REJECTED", "comfyui@http://127.0.0.1:1 failed prompt cccccccc-cccc-cccc-cccc-cccccccccccc at VAEDecode #8: bad"),
    ]);
    expect(g.map((x) => [x.code, x.count, x.seeds])).toEqual([
      ["BACKEND_REJECTED", 2, [1, 2]],
      ["TIMEOUT", 1, [3]],
      ["BACKEND_REJECTED", 1, [4]],
    ]);
  });
});

describe("bestOf warnings", () => {
  it("the backend's warning events reach onEvent at once and result.warnings once each", async () => {
    const events: BestOfEvent[] = [];
    const backend = new MemoryBackend({ warnings: ["member b is down", "member b is down"] });
    const r = await bestOf({ prompt: "p", n: 2, seed: 0, backend, scorer, onEvent: (e) => events.push(e) });
    const warns = events.filter((e) => e.type === "warning");
    expect(warns).toHaveLength(1);
    expect(events.findIndex((e) => e.type === "warning")).toBeLessThan(events.findIndex((e) => e.type === "rendered"));
    expect(r.warnings).toEqual(["memory@local: member b is down [BACKEND_UNREACHABLE]"]);
  });

  it("diverse with top 1 and draft-then-refine that re-renders every draft say so, naming options as optionNames does", async () => {
    const r = await bestOf({ prompt: "p", n: 2, seed: 0, backend: new MemoryBackend(), scorer, diverse: true });
    expect(r.warnings[0]).toBe(
      "diverse does nothing with top 1: near-duplicates are passed over only when selecting 2 or more; the best candidate is selected as usual",
    );
    const names = { n: "-n", top: "--top", "refine.k": "--refine" };
    const backend = new MemoryBackend();
    const rf = await bestOf({ prompt: "p", n: 2, top: 2, seed: 0, backend, scorer, refine: { draft: { steps: 4 } }, optionNames: names });
    expect(rf.warnings[0]).toBe(
      "draft-then-refine re-renders all 2 drafts (--refine 2 with -n 2), so the draft pass only adds work; raise -n above --top and --refine, or drop the draft settings",
    );
    expect(backend.requests.map((q) => [...q.seeds!].sort())).toEqual([
      [0, 1],
      [0, 1],
    ]);
  });
});

describe("bestOf seeds and resume identity", () => {
  it("random seeds keep seed + n - 1 within the backend's maxSeed", async () => {
    for (let i = 0; i < 200; i++) expect(randomSeed({ maxSeed: 20 }, 8) + 7).toBeLessThanOrEqual(20);
    expect(randomSeed({ maxSeed: Number.MAX_SAFE_INTEGER }, 8)).toBeLessThan(2 ** 48);
    // maxSeed n - 1 leaves one choice: 0.
    const r = await bestOf({ prompt: "p", n: 4, backend: new MemoryBackend({ maxSeed: 3 }), scorer });
    expect(r.seeds).toEqual([0, 1, 2, 3]);
    const e = await rejection(bestOf({ prompt: "p", n: 4, seed: 1, backend: new MemoryBackend({ maxSeed: 3 }), scorer }));
    expect(e.message).toBe(
      "Expected integer between 0 and 0 (the backend's largest seed, 3, minus n − 1) for seed but received 1 of type number",
    );
  });

  it("resuming with a backend of another fingerprint (another workflow) is a CONFLICT that names it", async () => {
    const out = path.join(tmp, "fingerprint");
    const a = new MemoryBackend({ fingerprint: { kind: "comfyui", workflow: { "3": { class_type: "KSampler" } } } });
    await bestOf({ prompt: "same", n: 2, seed: 1, backend: a, scorer, out });
    const b = new MemoryBackend({ fingerprint: { kind: "comfyui", workflow: { "3": { class_type: "KSamplerAdvanced" } } } });
    const e = await rejection(bestOf({ prompt: "same", n: 2, seed: 1, backend: b, scorer, out }));
    expect(e.code).toBe("CONFLICT");
    expect(e.details?.["differs"]).toEqual(["backend.workflow"]);
    expect(e.message).toContain("(different backend.workflow)");
    expect(b.requests).toHaveLength(0);
  });
});

describe("bestOf filesystem errors name the option and the path", () => {
  const names = { out: "--out" };

  it("a file where the output folder's parent should be: FILESYSTEM (ENOTDIR)", async () => {
    const file = path.join(tmp, "a-file");
    await writeFile(file, "x");
    const e = await rejection(
      bestOf({ prompt: "p", n: 1, backend: new MemoryBackend(), scorer, out: path.join(file, "sub"), optionNames: names }),
    );
    expect(e.code).toBe("FILESYSTEM");
    expect(e.details).toMatchObject({ option: "--out", errno: "ENOTDIR" });
    expect(e.message).toContain(`${path.join(file, "sub")} (--out): a part of the path is a file, not a folder (ENOTDIR)`);
  });

  it("a folder on procfs fails at once (Node's recursive mkdir would spin forever): NOT_FOUND (ENOENT)", async () => {
    const e = await rejection(bestOf({ prompt: "p", n: 1, backend: new MemoryBackend(), scorer, out: "/proc/pickrank-out" }));
    expect(e.code).toBe("NOT_FOUND");
    expect(e.message).toBe(
      "Could not create the output folder /proc/pickrank-out (out): it does not exist (ENOENT); expected a folder pickrank can create and write",
    );
  });

  it("a folder sysfs refuses: FILESYSTEM (EPERM)", async () => {
    const e = await rejection(
      bestOf({ prompt: "p", n: 1, backend: new MemoryBackend(), scorer, out: "/sys/pickrank-out", optionNames: names }),
    );
    expect(e.code).toBe("FILESYSTEM");
    expect(e.details).toMatchObject({ option: "--out", errno: "EPERM", path: "/sys/pickrank-out" });
  });

  it("an --out that is a file: FILESYSTEM", async () => {
    const file = path.join(tmp, "out-is-file");
    await writeFile(file, "x");
    const e = await rejection(bestOf({ prompt: "p", n: 1, backend: new MemoryBackend(), scorer, out: file, optionNames: names }));
    expect(e.code).toBe("FILESYSTEM");
    expect(e.message).toBe(`Expected a folder for --out but ${file} is a file`);
  });

  it("result.json, a kept PNG, the work folder and the journal that cannot be written: FILESYSTEM naming each path", async () => {
    const out = path.join(tmp, "blocked");
    const first = await bestOf({ prompt: "p", n: 2, seed: 5, backend: new MemoryBackend(), scorer, out, optionNames: names });
    // result.json turned into a folder: renaming the new one onto it fails (EISDIR).
    await rm(path.join(out, "result.json"));
    await mkdir(path.join(out, "result.json"));
    let e = await rejection(bestOf({ prompt: "p", n: 2, seed: 5, backend: new MemoryBackend(), scorer, out, optionNames: names }));
    expect([e.code, e.details?.["errno"], e.details?.["path"]]).toEqual(["FILESYSTEM", "EISDIR", path.join(out, "result.json")]);
    await rm(path.join(out, "result.json"), { recursive: true });
    // The kept PNG (this run's own, so it would be replaced) turned into a folder.
    const png = first.best.file!;
    await rm(png);
    await mkdir(png);
    e = await rejection(bestOf({ prompt: "p", n: 2, seed: 5, backend: new MemoryBackend(), scorer, out, optionNames: names }));
    expect([e.code, e.details?.["path"], e.details?.["option"]]).toEqual(["FILESYSTEM", png, "--out"]);
    // The journal turned into a folder.
    const other = path.join(tmp, "blocked-journal");
    await mkdir(path.join(other, ".pickrank", "journal.jsonl"), { recursive: true });
    e = await rejection(bestOf({ prompt: "p", n: 2, seed: 5, backend: new MemoryBackend(), scorer, out: other, optionNames: names }));
    expect([e.code, e.details?.["errno"]]).toEqual(["FILESYSTEM", "EISDIR"]);
    expect(e.message).toContain("Could not read the progress journal");
    // The work folder is a file.
    const work = path.join(tmp, "blocked-work");
    await mkdir(path.join(work, ".pickrank"), { recursive: true });
    await writeFile(path.join(work, ".pickrank", "work"), "");
    e = await rejection(bestOf({ prompt: "p", n: 2, seed: 5, backend: new MemoryBackend(), scorer, out: work, optionNames: names }));
    expect([e.code, e.details?.["errno"], e.details?.["path"]]).toEqual(["FILESYSTEM", "EEXIST", path.join(work, ".pickrank", "work")]);
  });

  // ENOSPC needs a full filesystem: a 64 KiB tmpfs, which only root with CAP_SYS_ADMIN can mount.
  const small = path.join(os.tmpdir(), `pickrank-enospc-${process.pid}`);
  let mounted = false;
  try {
    execFileSync("mkdir", ["-p", small]);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", small], { stdio: "ignore" });
    mounted = true;
  } catch {
    mounted = false;
  }
  afterAll(() => {
    if (mounted) execFileSync("umount", [small]);
    execFileSync("rm", ["-rf", small]);
  });
  it.skipIf(!mounted)("a full disk: FILESYSTEM (ENOSPC) naming the file being written, and no half-written file left", async () => {
    const e = await rejection(
      bestOf({ prompt: "p", n: 12, seed: 0, backend: new MemoryBackend(), scorer, out: small, optionNames: names }),
    );
    expect(e.code).toBe("FILESYSTEM");
    expect(e.details).toMatchObject({ option: "--out", errno: "ENOSPC" });
    expect(e.message).toContain("no space left on the device (ENOSPC)");
    const journal = await readFile(path.join(small, ".pickrank", "journal.jsonl"), "utf8").catch(() => "");
    for (const line of journal.split("\n").filter(Boolean)) expect(() => JSON.parse(line)).not.toThrow();
  });
});
