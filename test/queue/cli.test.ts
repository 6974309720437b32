/**
 * The queue's flags through the CLI in this process: what belongs on the workers is refused on the
 * coordinator, a bad or unreachable Redis URL is reported without its password.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.ts";
import { closedPort } from "../helpers/net.ts";
import { removeTinyModels, tinyModel } from "../helpers/tiny-model.ts";

describe("best-of --queue and pickrank worker: flags", () => {
  let model: string;
  beforeAll(async () => {
    model = await tinyModel();
  });
  afterAll(removeTinyModels);

  it("BAD CALL - server flags with --queue are refused, naming them: they belong on the workers", async () => {
    const r = await runCli([
      "best-of",
      "--prompt",
      "x",
      "--queue",
      "redis://127.0.0.1:6379",
      "--url",
      "http://h:8188",
      "--workflow",
      "w.json",
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--url, --workflow");
    expect(r.stderr).toContain("pickrank worker");
  });

  it("BAD CALL - a --queue that is not a Redis URL is BAD_INPUT, and its password is not echoed", async () => {
    const r = await runCli(["best-of", "--prompt", "x", "--queue", "http://u:hunter2@h:6379"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--queue");
    expect(r.stderr).not.toContain("hunter2");
    const w = await runCli(["worker", "--queue", "tcp://u:hunter2@h"]);
    expect(w.code).toBe(2);
    expect(w.stderr).not.toContain("hunter2");
  });

  it("EXPECTED FAILURE - an unreachable Redis fails best-of with BACKEND_UNREACHABLE and the URL without its password", async () => {
    const port = await closedPort();
    const r = await runCli([
      "best-of",
      "--prompt",
      "x",
      "-n",
      "2",
      "--model",
      model,
      "--device",
      "cpu",
      "--json",
      "--queue",
      `redis://:hunter2@127.0.0.1:${port}`,
    ]);
    expect(r.code).toBe(1);
    const err = r.json<{ error: { code: string; message: string } }>().error;
    expect(err.code).toBe("BACKEND_UNREACHABLE");
    expect(err.message).toContain(`redis://:***@127.0.0.1:${port}`);
    expect(r.stdout + r.stderr).not.toContain("hunter2");
  });
});
