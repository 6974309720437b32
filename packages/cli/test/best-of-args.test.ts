/**
 * `pickrank best-of` with bad arguments: each fails before any server call or model load, with a
 * message that says what was wrong and what was expected, and a non-zero exit code.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../../test/helpers/cli.ts";
import { CLI_OPTION_NAMES, withFlagNames } from "../src/commands/best-of.ts";
import { closedPort } from "../../../test/helpers/net.ts";

const run = (args: string[]) => runCli(["best-of", ...args]);

let tmp: string;
let deadUrl: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-bestof-args-"));
  deadUrl = `http://127.0.0.1:${await closedPort()}`;
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("pickrank best-of bad arguments", () => {
  it("best-of -n 0 says n must be a positive integer (exit 2)", async () => {
    const r = await run(["--prompt", "p", "-n", "0", "--url", deadUrl]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/-n, --n <count>.*Expected a positive integer but received "0"/s);
  });

  it("best-of -n -3 is refused too (exit 2)", async () => {
    const r = await run(["--prompt", "p", "-n", "-3", "--url", deadUrl]);
    expect(r.code).toBe(2);
  });

  it("best-of --top larger than -n (exit 2)", async () => {
    const r = await run(["--prompt", "p", "-n", "4", "--top", "5", "--url", deadUrl]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Expected integer between 1 and -n (4) for --top but received 5 of type number [BAD_INPUT]");
  });

  it("best-of without --prompt or --prompts (exit 2)", async () => {
    const r = await run(["-n", "4", "--url", deadUrl]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Expected exactly one of --prompt or --prompts but received neither [BAD_INPUT]");
  });

  it("best-of --workflow naming a missing file (exit 2, NOT_FOUND: the contract's table)", async () => {
    const missing = path.join(tmp, "nope.json");
    const r = await run(["--prompt", "p", "--workflow", missing, "--url", deadUrl]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`Expected a ComfyUI workflow in API format`);
    expect(r.stderr).toContain(`at ${missing} but it could not be read (ENOENT) [NOT_FOUND]`);
  });

  it("best-of --workflow that is not JSON (exit 2)", async () => {
    const bad = path.join(tmp, "bad.json");
    await writeFile(bad, "{ not json");
    const r = await run(["--prompt", "p", "--workflow", bad, "--url", deadUrl]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Expected JSON in the workflow file .* but it does not parse/);
  });

  it("best-of --prompts with an empty file (exit 2)", async () => {
    const f = path.join(tmp, "prompts.txt");
    await writeFile(f, "\n# only a comment\n\n");
    const r = await run(["--prompts", f, "--url", deadUrl]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Expected at least one prompt");
  });

  it("best-of against an unreachable server says where it looked, without the password (exit 1)", async () => {
    const url = deadUrl.replace("http://", "http://artist:s3cret@");
    const r = await run(["--prompt", "p", "--url", url, "--json"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Could not reach the comfyui server at http://***@127.0.0.1:");
    expect(r.stderr).toContain("[BACKEND_UNREACHABLE]");
    expect(r.stderr + r.stdout).not.toContain("s3cret");
    expect(JSON.parse(r.stdout).error.code).toBe("BACKEND_UNREACHABLE");
  });

  it("best-of --auth is never echoed either", async () => {
    const r = await run(["--prompt", "p", "--backend", "a1111", "--url", deadUrl, "--auth", "artist:hunter2"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Could not reach the a1111 server");
    expect(r.stderr + r.stdout).not.toContain("hunter2");
  });

  it("best-of --device with an unknown device (exit 2)", async () => {
    const r = await run(["--prompt", "p", "--device", "tpu", "--url", deadUrl]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Expected one of auto, cpu, webgpu, cuda but received "tpu"');
  });

  it("best-of --backend with an unknown kind (exit 2)", async () => {
    const r = await run(["--prompt", "p", "--backend", "midjourney", "--url", deadUrl]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Expected one of .*"comfyui".* for kind but received "midjourney"/);
  });

  it("best-of --refine without a draft setting (exit 2)", async () => {
    const r = await run(["--prompt", "p", "-n", "8", "--refine", "2", "--url", deadUrl]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      "Expected at least one cheaper setting (--draft-steps or --draft-size) with --refine but received none [BAD_INPUT]",
    );
  });

  it("best-of --draft-size that is not WxH (exit 2)", async () => {
    const r = await run(["--prompt", "p", "--draft-size", "big", "--url", deadUrl]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Expected WIDTHxHEIGHT");
  });

  it("best-of --min larger than -n names the flag, not the API field (exit 2)", async () => {
    const r = await run(["--prompt", "p", "-n", "4", "--min", "5", "--url", deadUrl]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Expected integer between 1 and -n (4) for --min but received 5 of type number [BAD_INPUT]");
  });

  it("best-of --refine below --top names both flags (exit 2)", async () => {
    const r = await run(["--prompt", "p", "-n", "8", "--top", "3", "--draft-steps", "4", "--refine", "2", "--url", deadUrl]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Expected integer between --top (3) and -n (8) for --refine but received 2 of type number");
  });

  it("best-of --diverse outside (-1, 1] names --diverse (exit 2)", async () => {
    const r = await run(["--prompt", "p", "--top", "2", "--diverse", "1.5", "--url", deadUrl]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Expected number in (-1, 1] for --diverse but received 1.5 of type number");
  });

  it("best-of --seed past the backend's largest seed (A1111: 2^32 - 1) is refused before any server call (exit 2)", async () => {
    const r = await run(["--prompt", "p", "--backend", "a1111", "-n", "4", "--seed", String(2 ** 32 - 2), "--url", deadUrl]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `Expected integer between 0 and ${2 ** 32 - 4} (the backend's largest seed, ${2 ** 32 - 1}, minus -n − 1) for --seed`,
    );
    expect(r.stderr).not.toContain("Could not reach");
  });

  it("best-of --keep with an unknown value (exit 2)", async () => {
    const r = await run(["--prompt", "p", "--keep", "some", "--url", deadUrl]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Allowed choices are top, all/);
  });
});

describe("best-of names API options by their flags", () => {
  it("withFlagNames rewrites option paths in messages from the scorer and the selector", () => {
    expect(withFlagNames("Expected an image of at most 179 MP (maxPixels 178956970); raise maxPixels if this image is trusted")).toBe(
      "Expected an image of at most 179 MP (--max-pixels 178956970); raise --max-pixels if this image is trusted",
    );
    expect(withFlagNames("Expected integer between top (3) and n (8) for refine.k")).toBe(
      "Expected integer between top (3) and n (8) for --refine",
    );
    // Plain words stay prose.
    expect(withFlagNames("the top candidate of n")).toBe("the top candidate of n");
  });

  it("every bestOf option a flag sets is in the table", () => {
    expect(CLI_OPTION_NAMES).toMatchObject({
      minSurvivors: "--min",
      n: "-n",
      top: "--top",
      out: "--out",
      "out.keep": "--keep",
      "refine.k": "--refine",
      "diverse.threshold": "--diverse",
    });
  });
});
