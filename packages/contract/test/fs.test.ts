import { execFileSync } from "node:child_process";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeDir } from "../src/fs.ts";

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-contract-fs-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("makeDir", () => {
  it("creates missing parents and accepts an existing folder", async () => {
    const deep = path.join(tmp, "a", "b", "c");
    await makeDir(deep);
    await makeDir(deep);
    expect((await stat(deep)).isDirectory()).toBe(true);
  });

  it("makeDir under a file fails with ENOTDIR; on a file itself with EEXIST", async () => {
    const file = path.join(tmp, "file");
    await writeFile(file, "x");
    await expect(makeDir(path.join(file, "sub", "deeper"))).rejects.toMatchObject({ code: "ENOTDIR" });
    await expect(makeDir(file)).rejects.toMatchObject({ code: "EEXIST" });
  });

  it("makeDir on procfs returns ENOENT instead of spinning (Node's recursive mkdir never returns there)", async () => {
    await expect(makeDir("/proc/pickrank-contract-test/x")).rejects.toMatchObject({ code: "ENOENT", path: "/proc/pickrank-contract-test" });
  });
});

describe("acquireLock", () => {
  it("a process that exits without release() still removes its lock file", async () => {
    const lock = path.join(tmp, "locks", "lock");
    const src = path.resolve(__dirname, "../src/lock.ts");
    const script = `import { acquireLock } from ${JSON.stringify(src)}; await acquireLock(${JSON.stringify(lock)}); console.log("held"); process.exit(3);`;
    const tsx = path.resolve(__dirname, "../../../node_modules/.bin/tsx");
    const file = path.join(tmp, "hold-lock.mts");
    await writeFile(file, script);
    let out = "";
    try {
      execFileSync(tsx, [file], { encoding: "utf8" });
    } catch (e) {
      out = String((e as { stdout?: string }).stdout);
      expect((e as { status?: number }).status).toBe(3);
    }
    expect(out).toContain("held");
    await expect(stat(lock)).rejects.toMatchObject({ code: "ENOENT" });
  });
});
