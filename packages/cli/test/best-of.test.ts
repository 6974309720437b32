/**
 * `pickrank best-of` end to end: the real command, the real tiny-model Scorer, and fake ComfyUI /
 * Automatic1111 servers that speak the real protocols.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Scorer } from "@pickrank/core";
import { readPngText } from "@pickrank/selector";
import { startFakeA1111 } from "../../../test/fakes/a1111-server.ts";
import { readFakeImageInfo, startFakeComfyUI, type FakeComfyUI } from "../../../test/fakes/comfyui-server.ts";
import { tinyModel } from "../../../test/helpers/tiny-model.ts";
import { comfySettings } from "../../../test/helpers/best-of.ts";
import { runCli } from "../../../test/helpers/cli.ts";
import { closedPort } from "../../../test/helpers/net.ts";

let model: string;
let tmp: string;
const servers: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  model = await tinyModel();
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-bestof-e2e-"));
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

interface JsonEntry {
  index: number;
  seed: number;
  score: number;
  prob: number;
  rank: number;
  backend: string;
  file?: string;
  draft?: { score: number; prob: number; rank: number };
}
interface JsonResult {
  prompt: string;
  seeds: number[];
  best: JsonEntry;
  top: JsonEntry[];
  ranked: JsonEntry[];
  failed: { seed: number; index: number; error: { code: string; message: string } }[];
  warnings: string[];
  device: string;
  model: { dir: string };
  refine?: { k: number; drafts: JsonEntry[]; spearman: number | null; kendall: number | null; bestStayedBest: boolean | null };
  out?: { dir: string; resultFile: string; files: string[]; resumed: number };
}

const base = () => ["best-of", "--model", model, "--device", "cpu"];

describe("pickrank best-of on ComfyUI", () => {
  it("ranks every candidate as PickScore does, saves PNGs whose metadata reads back, prints the API object", async () => {
    const fake = await comfy();
    const out = path.join(tmp, "comfy-all");
    const prompt = "a lighthouse at dusk, oil painting";
    const r = await runCli([
      ...base(),
      "--prompt",
      prompt,
      "-n",
      "4",
      "--top",
      "2",
      "--seed",
      "100",
      "--url",
      fake.url,
      "--keep",
      "all",
      "--out",
      out,
      "--json",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as JsonResult;
    expect(j.seeds).toEqual([100, 101, 102, 103]);
    expect(j.ranked).toHaveLength(4);
    expect(j.top.map((c) => c.rank)).toEqual([1, 2]);
    expect(j.failed).toEqual([]);
    // The fake got one prompt per seed, default workflow, the server's first checkpoint.
    const sent = fake.prompts.map((p) => comfySettings(p.prompt));
    expect(sent.map((s) => s.seed).sort()).toEqual([100, 101, 102, 103]);
    expect(new Set(sent.map((s) => s.checkpoint))).toEqual(new Set(["sd15.safetensors"]));
    // Scores against PickScore computed directly on the saved files (text chunks do not touch pixels).
    const files = j.ranked.map((c) => c.file!);
    const scorer = await Scorer.create({ model, device: "cpu" });
    try {
      const direct = await scorer.rank(prompt, files);
      expect(direct.map((d) => files[d.index])).toEqual(files);
      direct.forEach((d) => {
        const c = j.ranked[d.index]!;
        expect(c.score).toBeCloseTo(d.score, 4);
        expect(c.prob).toBeCloseTo(d.prob, 4);
        expect(c.rank).toBe(d.rank);
      });
    } finally {
      await scorer.dispose();
    }
    // Metadata: A1111-style parameters, our JSON chunk, and the generator's own chunk kept.
    for (const c of j.ranked) {
      const png = await readFile(c.file!);
      const text = readPngText(png);
      expect(text["parameters"]!.split("\n")[0]).toBe(prompt);
      expect(text["parameters"]).toContain(`Seed: ${c.seed}`);
      expect(text["parameters"]).toContain(`PickScore rank: ${c.rank}/4`);
      const meta = JSON.parse(text["pickrank"]!) as {
        seed: number;
        score: number;
        prob: number;
        rank: number;
        prompt: string;
        model: { dtype: string };
      };
      expect(meta).toMatchObject({ prompt, seed: c.seed, rank: c.rank, model: { dtype: "fp32" } });
      expect(meta.score).toBeCloseTo(c.score, 10);
      expect(meta.prob).toBeCloseTo(c.prob, 10);
      expect(readFakeImageInfo(png)).toMatchObject({ seed: c.seed, prompt });
    }
    // result.json holds the same object the command printed.
    expect(JSON.parse(await readFile(path.join(out, "result.json"), "utf8"))).toEqual(j);
    expect((await readdir(out)).filter((f) => f.endsWith(".png")).sort()).toEqual(j.ranked.map((c) => path.basename(c.file!)).sort());
  });

  it("prints a table on stdout and progress on stderr", async () => {
    const fake = await comfy();
    const r = await runCli([...base(), "--prompt", "a red fox", "-n", "3", "--top", "2", "--seed", "7", "--url", fake.url]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^rank\s+seed\s+score\s+prob\s+top\s+saved$/);
    expect(lines.slice(2)).toHaveLength(3);
    expect(lines[2]).toMatch(/^\s*1\s+\d+\s+-?\d+\.\d{3}\s+0\.\d{4}\s+\*$/);
    expect(lines.filter((l) => l.includes("*"))).toHaveLength(2);
    expect(r.stderr).toContain("best-of rendering 3");
    expect(r.stderr).toMatch(/done: best seed \d+, score/);
  });

  it("uses --workflow and --checkpoint, and re-renders only the best drafts in draft-then-refine", async () => {
    const fake = await comfy();
    const wf = path.resolve(__dirname, "../../../examples/workflows/txt2img-sd.json");
    const r = await runCli([
      ...base(),
      "--prompt",
      "castle on a hill",
      "-n",
      "5",
      "--seed",
      "50",
      "--steps",
      "20",
      "--draft-steps",
      "4",
      "--refine",
      "2",
      "--workflow",
      wf,
      "--checkpoint",
      "sdxl_base_1.0.safetensors",
      "--url",
      fake.url,
      "--json",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as JsonResult;
    const sent = fake.prompts.map((p) => comfySettings(p.prompt));
    expect(sent).toHaveLength(7);
    expect(sent.slice(0, 5).every((s) => s.steps === 4)).toBe(true);
    expect(sent.slice(5).every((s) => s.steps === 20)).toBe(true);
    expect(new Set(sent.map((s) => s.checkpoint))).toEqual(new Set(["sdxl_base_1.0.safetensors"]));
    const bestDrafts = j.refine!.drafts.slice(0, 2).map((c) => c.seed);
    expect(
      sent
        .slice(5)
        .map((s) => s.seed)
        .sort(),
    ).toEqual(bestDrafts.sort());
    expect(j.ranked).toHaveLength(2);
    expect(j.ranked.every((c) => c.draft !== undefined)).toBe(true);
    expect(j.refine!.k).toBe(2);
    expect(typeof j.refine!.spearman).toBe("number");
    expect(typeof j.refine!.bestStayedBest).toBe("boolean");
  });

  it("a run that lost candidates is partial: exit 3 with one summary per cause; --min accepts it; below --min fails", async () => {
    const fake = await comfy({ faults: { failSeeds: [11, 12] } });
    const r = await runCli([...base(), "--prompt", "p", "-n", "4", "--seed", "10", "--url", fake.url, "--json"]);
    expect(r.code, r.stderr).toBe(3);
    const j = JSON.parse(r.stdout) as JsonResult & { outcome: string; failures: { code: string; count: number; seeds: number[] }[] };
    expect(j.ranked.map((c) => c.seed).sort()).toEqual([10, 13]);
    expect(j.outcome).toBe("partial");
    expect(j.failed.map((f) => f.seed)).toEqual([11, 12]);
    // Two failures with one cause (the fake's CUDA OOM at the sampler): one group, one summary line.
    expect(j.failures).toEqual([expect.objectContaining({ code: "BACKEND_REJECTED", count: 2, seeds: [11, 12] })]);
    expect(r.stderr).toContain(
      "pickrank: 2 of 4 candidate renders failed; the best is chosen from the 2 that survived:\n  2 × BACKEND_REJECTED: ",
    );
    expect(r.stderr.match(/× BACKEND_REJECTED/g)).toHaveLength(1);
    expect(r.stderr).toContain("pass --min <m> to accept a partial run [PARTIAL]");

    const ok = await runCli([...base(), "--prompt", "p", "-n", "4", "--seed", "10", "--min", "2", "--url", fake.url]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toContain("2 of 4 candidate renders failed; the best is chosen from the 2 that survived (accepted: --min 2)");
    expect(ok.stderr).not.toContain("[PARTIAL]");

    const few = await runCli([...base(), "--prompt", "p", "-n", "4", "--seed", "10", "--min", "3", "--url", fake.url]);
    expect(few.code).toBe(1);
    expect(few.stderr).toMatch(
      /Expected at least 3 surviving candidate\(s\) for "p" but 2 of 4 survived \(--min 3\); failures: 2 × BACKEND_REJECTED: .*\[TOO_FEW_CANDIDATES\]/,
    );
  });

  it("keeps what arrived when the server dies mid-run, and exits 3 (partial)", async () => {
    const fake = await comfy({ faults: { killAfterPrompts: 2 } });
    const r = await runCli([...base(), "--prompt", "p", "-n", "5", "--seed", "0", "--url", fake.url, "--json"]);
    expect(r.code, r.stderr).toBe(3);
    const j = JSON.parse(r.stdout) as JsonResult & { outcome: string; failures: { code: string; count: number }[] };
    // The second image may or may not be fetched before the port closes.
    expect(j.ranked.length).toBeGreaterThanOrEqual(1);
    expect(j.ranked.length).toBeLessThanOrEqual(2);
    expect(j.ranked.length + j.failed.length).toBe(5);
    expect(j.outcome).toBe("partial");
    expect(new Set(j.failed.map((f) => f.error.code))).toEqual(new Set(["BACKEND_UNREACHABLE"]));
    // One dead server is one cause, however many candidates it took down.
    expect(j.failures).toHaveLength(1);
    expect(j.failures[0]!.count).toBe(j.failed.length);
    expect(j.warnings.join(" ")).toMatch(new RegExp(`${j.failed.length} candidate render\\(s\\) failed`));
  });

  it("a pool member that is down is named at once on stderr and in result.json's warnings; the live one renders all", async () => {
    const fake = await comfy();
    const dead = `http://127.0.0.1:${await closedPort()}`;
    const out = path.join(tmp, "pool-dead-member");
    const r = await runCli([...base(), "--prompt", "p", "-n", "2", "--seed", "1", "--url", dead, "--url", fake.url, "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    const said = `comfyui@${dead} is down and left out of this run`;
    expect(r.stderr).toContain(`pickrank: warning: ${said}`);
    // Said while the run goes on, before its summary.
    expect(r.stderr.indexOf(said)).toBeLessThan(r.stderr.indexOf("best-of done"));
    const j = JSON.parse(await readFile(path.join(out, "result.json"), "utf8")) as {
      warnings: string[];
      outcome: string;
      ranked: unknown[];
    };
    expect(j.warnings.some((w) => w.includes(said))).toBe(true);
    expect(j.outcome).toBe("complete");
    expect(j.ranked).toHaveLength(2);
  });

  it("warns at once on stderr and in result.json when a setting does nothing, explains the status line and the work folder", async () => {
    const fake = await comfy();
    const out = path.join(tmp, "comfy-warn");
    const r = await runCli([...base(), "--prompt", "p", "-n", "4", "--seed", "1", "--diverse", "--url", fake.url, "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    const warning =
      "--diverse does nothing with --top 1: near-duplicates are passed over only when selecting 2 or more; the best candidate is selected as usual";
    expect(r.stderr).toContain(`pickrank: warning: ${warning}\n`);
    // Said before the candidates were rendered, not after the run.
    expect(r.stderr.indexOf(warning)).toBeLessThan(r.stderr.indexOf("best-of rendering 4"));
    const j = JSON.parse(await readFile(path.join(out, "result.json"), "utf8")) as {
      warnings: string[];
      outcome: string;
      out: { work: { files: number } };
    };
    expect(j.warnings).toContain(warning);
    expect(j.outcome).toBe("complete");
    expect(j.out.work.files).toBe(4);
    expect(r.stderr).toMatch(
      /rendered \d\/4, scored \d\/4(, sampling step \d+\/\d+)? \(renders per server: comfyui@http:\/\/127\.0\.0\.1:\d+ \d\)/,
    );
    expect(r.stdout).toMatch(
      /work: 4 rendered candidates \([\d.]+ KB\) kept in .*\.pickrank\/work, so the same command with another --top, --diverse or --keep re-selects/,
    );
  });

  it("an --out the filesystem refuses is a coded error naming --out, not a hang (procfs: Node's recursive mkdir spins there)", async () => {
    const fake = await comfy();
    const r = await runCli([...base(), "--prompt", "p", "-n", "2", "--url", fake.url, "--out", "/proc/pickrank-out"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      "Could not create the output folder /proc/pickrank-out (--out): it does not exist (ENOENT); expected a folder pickrank can create and write [NOT_FOUND]",
    );
    expect(fake.prompts).toHaveLength(0);
  });

  it("refuses an --out folder holding another run (CONFLICT) and never overwrites it", async () => {
    const fake = await comfy();
    const out = path.join(tmp, "comfy-conflict");
    expect((await runCli([...base(), "--prompt", "first", "-n", "2", "--seed", "1", "--url", fake.url, "--out", out])).code).toBe(0);
    const before = await readFile(path.join(out, "result.json"), "utf8");
    const r = await runCli([...base(), "--prompt", "second", "-n", "2", "--seed", "1", "--url", fake.url, "--out", out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /holds another run \(different prompts\); expected the same prompt and settings to resume it, or a new folder \[CONFLICT\]/,
    );
    expect(await readFile(path.join(out, "result.json"), "utf8")).toBe(before);
  });

  it("runs a prompts file: one folder per prompt, one model load", async () => {
    const fake = await comfy();
    const list = path.join(tmp, "prompts.txt");
    await writeFile(list, "# tonight\na cat in a hat\n\na dog on a log\n");
    const out = path.join(tmp, "comfy-batch");
    const r = await runCli([...base(), "--prompts", list, "-n", "2", "--seed", "3", "--url", fake.url, "--out", out, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { runs: JsonResult[]; errors: unknown[]; out: { files: string[] } };
    expect(j.runs.map((x) => x.prompt)).toEqual(["a cat in a hat", "a dog on a log"]);
    expect(j.errors).toEqual([]);
    expect((await readdir(out)).sort()).toEqual([".pickrank", "prompt-001", "prompt-002", "result.json"]);
    expect(j.out.files.map((f) => path.relative(out, f).split(path.sep)[0])).toEqual(["prompt-001", "prompt-002"]);
  });
});

describe("pickrank best-of --prompts outcomes", () => {
  it("a batch whose runs lost candidates exits 3; one where no prompt made a result exits 1", async () => {
    const fake = await comfy({ faults: { failSeeds: [10] } });
    const list = path.join(tmp, "prompts-partial.txt");
    await writeFile(list, "a cat\na dog\n");
    const r = await runCli([...base(), "--prompts", list, "-n", "2", "--seed", "10", "--url", fake.url, "--json"]);
    expect(r.code, r.stderr).toBe(3);
    const j = JSON.parse(r.stdout) as { outcome: string; runs: { outcome: string }[] };
    expect(j.outcome).toBe("partial");
    expect(j.runs.map((x) => x.outcome)).toEqual(["partial", "partial"]);
    expect(r.stderr).toContain('pickrank: prompt "a cat": 1 of 2 candidate renders failed');

    const dead = await comfy({ faults: { failSeeds: [10, 11] } });
    const none = await runCli([...base(), "--prompts", list, "-n", "2", "--seed", "10", "--url", dead.url, "--json"]);
    expect(none.code).toBe(1);
    expect((JSON.parse(none.stdout) as { outcome: string }).outcome).toBe("failed");
    expect(none.stderr).toMatch(/pickrank: prompt 1 failed: Expected at least 1 surviving candidate\(s\) .*\[TOO_FEW_CANDIDATES\]/);
  });
});

describe("pickrank best-of on several servers", () => {
  it("spreads the candidates over every --url and counts them per server", async () => {
    const [a, b] = await Promise.all([comfy({ stepDelayMs: 5 }), comfy({ stepDelayMs: 5 })]);
    const r = await runCli([...base(), "--prompt", "two servers", "-n", "6", "--seed", "60", "--url", a.url, "--url", b.url, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as JsonResult;
    expect(j.ranked.map((c) => c.seed).sort()).toEqual([60, 61, 62, 63, 64, 65]);
    expect(new Set(j.ranked.map((c) => c.backend))).toEqual(new Set([`comfyui@${a.url}`, `comfyui@${b.url}`]));
    expect(a.prompts.length + b.prompts.length).toBe(6);
  });

  it("says which servers it tried when none answers (exit 1)", async () => {
    const a = await comfy();
    await a.kill();
    const b = await comfy();
    await b.kill();
    const r = await runCli([...base(), "--prompt", "p", "--url", a.url, "--url", b.url]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Could not reach the comfyui servers at ${a.url}, ${b.url}: comfyui@${a.url}:`);
  });
});

describe("pickrank best-of on Automatic1111", () => {
  it("works with credentials in the URL and never echoes them", async () => {
    const fake = await startFakeA1111({ auth: { username: "artist", password: "pa55word" } });
    servers.push(fake);
    const url = fake.url.replace("http://", "http://artist:pa55word@");
    const out = path.join(tmp, "a1111");
    const r = await runCli([
      ...base(),
      "--backend",
      "a1111",
      "--prompt",
      "a watercolor fox",
      "-n",
      "3",
      "--seed",
      "20",
      "--top",
      "1",
      "--url",
      url,
      "--out",
      out,
      "--json",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as JsonResult;
    expect(j.ranked.map((c) => c.seed).sort()).toEqual([20, 21, 22]);
    expect(fake.log.every((l) => l.authorization === `Basic ${Buffer.from("artist:pa55word").toString("base64")}`)).toBe(true);
    const everything =
      r.stdout +
      r.stderr +
      (await readFile(path.join(out, "result.json"), "utf8")) +
      (await readFile(path.join(out, ".pickrank", "journal.jsonl"), "utf8"));
    expect(everything).not.toContain("pa55word");
    const text = readPngText(await readFile(j.best.file!));
    expect(text["parameters"]).toContain(`Seed: ${j.best.seed}`);
    expect(text["parameters"]).not.toContain("pa55word");
  });
});
