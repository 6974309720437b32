/** best-of's credentials: the % escape, refused credentials, and the sources that stay out of ps (--auth-file, PICKRANK_AUTH). */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.ts";
import { startFakeA1111, type FakeA1111 } from "../fakes/a1111-server.ts";

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});
async function guarded(): Promise<FakeA1111> {
  const f = await startFakeA1111({ auth: { username: "bob", password: "right-pw" } });
  closers.push(() => f.close());
  return f;
}

describe("best-of credentials", () => {
  it("a bare % in the URL's password: BAD_INPUT (exit 2) saying to write %25, without the password", async () => {
    const r = await runCli(["best-of", "--prompt", "x", "--backend", "a1111", "--url", "http://admin:50%off@127.0.0.1:9"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('write "%" as "%25"');
    expect(r.stderr).toContain("BAD_INPUT");
    expect(r.stderr).not.toContain("50%off");
  });

  it("refused credentials from --auth-file are BACKEND_AUTH, not 'start it with --api'", async () => {
    const f = await guarded();
    const dir = await mkdtemp(path.join(tmpdir(), "pickrank-cred-"));
    closers.push(() => rm(dir, { recursive: true, force: true }));
    const file = path.join(dir, "a1111.cred");
    await writeFile(file, "bob:wrong-pw-123\n");
    const r = await runCli(["best-of", "--prompt", "x", "--backend", "a1111", "--url", f.url, "--auth-file", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/refused the credentials given for GET \/sdapi\/v1\/options \(HTTP 401/);
    expect(r.stderr).toContain("BACKEND_AUTH");
    expect(r.stderr).not.toContain("--api");
    expect(r.stderr + r.stdout).not.toContain("wrong-pw-123");
    expect(f.log[0]?.authorization).toBe(`Basic ${Buffer.from("bob:wrong-pw-123").toString("base64")}`);
  });

  it("PICKRANK_AUTH is used when neither --auth nor --auth-file is given", async () => {
    const f = await guarded();
    const before = process.env.PICKRANK_AUTH;
    process.env.PICKRANK_AUTH = "bob:env-wrong-pw";
    try {
      const r = await runCli(["best-of", "--prompt", "x", "--backend", "a1111", "--url", f.url]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("BACKEND_AUTH");
      expect(r.stderr).not.toContain("env-wrong-pw");
    } finally {
      if (before === undefined) delete process.env.PICKRANK_AUTH;
      else process.env.PICKRANK_AUTH = before;
    }
    expect(f.log[0]?.authorization).toBe(`Basic ${Buffer.from("bob:env-wrong-pw").toString("base64")}`);
  });
});
