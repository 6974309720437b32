/** Real clients against real servers: the Python reward example (when python3 is present) and `pickrank serve` itself. */
import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import sharp from "sharp";
import type { Scorer } from "@pickrank/core";
import { runCli, spawnCli } from "../../../test/helpers/cli.ts";
import { closedPort } from "../../../test/helpers/net.ts";
import { repoRoot } from "../../../test/helpers/paths.ts";
import { removeTinyModels, tinyModel } from "../../../test/helpers/tiny-model.ts";
import type { PickrankServer } from "../src/index.ts";
import { IMAGE_NAMES, imageBytes, imagePath, postJson, serve, tinyScorer } from "./helpers.ts";

const hasPython = spawnSync("python3", ["--version"]).status === 0;
let scorer: Scorer;
let server: PickrankServer;
let url: string;
let tmp: string;

beforeAll(async () => {
  scorer = await tinyScorer();
  ({ server, url } = await serve(scorer));
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-serve-"));
});

afterAll(async () => {
  await server?.close();
  await scorer?.dispose();
  await rm(tmp, { recursive: true, force: true });
  await removeTinyModels();
});

function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe.skipIf(!hasPython)("examples/reward_server.py (Python standard library) against the real server", () => {
  it("scores files for one prompt as one group: Scorer#rank's numbers", async () => {
    const files = IMAGE_NAMES.slice(0, 3).map(imagePath);
    const res = await run("python3", ["examples/reward_server.py", "--url", url, "--prompt", "a python reward", "--group", ...files]);
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
    const out = JSON.parse(res.stdout) as { results: { file: string; score: number; prob: number; rank: number }[] };
    const expected = await scorer.rank("a python reward", files);
    for (const r of expected) {
      const got = out.results[r.index]!;
      expect(got.file).toBe(files[r.index]);
      expect(got.score).toBeCloseTo(r.score, 5);
      expect(got.prob).toBeCloseTo(r.prob, 6);
      expect(got.rank).toBe(r.rank);
    }
  });

  it("pickscore_rewards with raw RGB pixels and one broken image: None for that one only", async () => {
    const { data, info } = await sharp(imagePath("photo_768.jpg")).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const rawFile = path.join(tmp, "photo.rgb");
    await writeFile(rawFile, data);
    const script = [
      "import json, sys",
      "sys.path.insert(0, 'examples')",
      "from reward_server import pickscore_rewards",
      `raw = open(${JSON.stringify(rawFile)}, 'rb').read()`,
      `png = open(${JSON.stringify(imagePath(IMAGE_NAMES[0]))}, 'rb').read()`,
      `images = [{'raw': raw, 'width': ${info.width}, 'height': ${info.height}, 'channels': 3}, b'not an image', png]`,
      `print(json.dumps(pickscore_rewards(['raw a', 'raw b', 'raw c'], images, url=${JSON.stringify(url)})))`,
    ].join("\n");
    const res = await run("python3", ["-c", script]);
    expect(res.stderr).toBe("");
    const rewards = JSON.parse(res.stdout) as (number | null)[];
    expect(rewards[1]).toBeNull();
    const png = await sharp(data, { raw: { width: info.width, height: info.height, channels: 3 } })
      .png()
      .toBuffer();
    expect(rewards[0]).toBeCloseTo((await scorer.score("raw a", [png]))[0]!.score, 5);
    expect(rewards[2]).toBeCloseTo((await scorer.score("raw c", [await imageBytes(IMAGE_NAMES[0])]))[0]!.score, 5);
  });
});

describe.skipIf(!hasPython)("examples/reward_server.py with no server", () => {
  it("BAD CALL - a server that is not running: one line saying so and how to start it, exit 1, no traceback", async () => {
    const down = `http://127.0.0.1:${await closedPort()}`;
    const res = await run("python3", ["examples/reward_server.py", "--url", down, "--prompt", "x", imagePath(IMAGE_NAMES[0])]);
    expect(res.code).toBe(1);
    expect(res.stderr).not.toContain("Traceback");
    expect(res.stderr).toMatch(
      new RegExp(`^reward_server: UNREACHABLE: no answer from pickrank serve at ${down} \\(.*\\); start it with \`pickrank serve\``),
    );
  });
});

describe("pickrank serve", () => {
  it("BAD CALL - --host 0.0.0.0 without a token exits 2 before loading any model", async () => {
    const res = await runCli(["serve", "--host", "0.0.0.0", "--model", path.join(tmp, "no-such-model")]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/Expected a token \(--token-file <file> or env PICKRANK_TOKEN\)/);
  });

  it("BAD CALL - --token-file that does not exist names the option", async () => {
    const res = await runCli(["serve", "--token-file", path.join(tmp, "missing-token"), "--model", path.join(tmp, "m")]);
    expect(res.code).toBe(2); // NOT_FOUND: USAGE in the code table
    expect(res.stderr).toMatch(/Could not read the token file .*missing-token \(--token-file\).*\[NOT_FOUND\]/);
  });

  it("serves, answers /v1/rank, and drains on SIGTERM with exit code 0", async () => {
    const model = await tinyModel();
    const cli = spawnCli(["serve", "--model", model, "--port", "0", "--device", "cpu", "--json"]);
    const started = await new Promise<{ url: string; device: string }>((resolve, reject) => {
      cli.proc.stdout!.on("data", () => {
        try {
          resolve(JSON.parse(cli.stdout()) as { url: string; device: string });
        } catch {
          // not the whole document yet
        }
      });
      void cli.done.then((r) => reject(new Error(`serve exited with ${r.code} before listening: ${r.stderr}`)));
    });
    expect(started.device).toBe("cpu");
    const res = await postJson(`${started.url}/v1/rank`, {
      prompt: "from the cli",
      images: [(await imageBytes(IMAGE_NAMES[0])).toString("base64")],
    });
    expect(res.status).toBe(200);
    cli.proc.kill("SIGTERM");
    const end = await cli.done;
    expect(end.code).toBe(0);
    expect(end.stderr).toMatch(/SIGTERM/);
    expect(end.stderr).toMatch(/stopped/);
  });
});
