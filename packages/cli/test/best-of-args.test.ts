/**
 * `pickrank best-of` with bad arguments: each fails before any server call or model load, with a
 * message that says what was wrong and what was expected, and a non-zero exit code.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../../test/helpers/cli.ts";
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
    expect(r.stderr).toContain("Expected exactly one of --prompt <text> or --prompts <file> but received neither");
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
    expect(r.stderr).toContain("Expected --draft-steps or --draft-size with --refine");
  });

  it("best-of --draft-size that is not WxH (exit 2)", async () => {
    const r = await run(["--prompt", "p", "--draft-size", "big", "--url", deadUrl]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Expected WIDTHxHEIGHT");
  });

  it("best-of --keep with an unknown value (exit 2)", async () => {
    const r = await run(["--prompt", "p", "--keep", "some", "--url", deadUrl]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Allowed choices are top, all/);
  });
});
