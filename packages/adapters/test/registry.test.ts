import { createServer } from "node:http";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  backendKinds,
  createBackend,
  parseEndpoint,
  redactUrl,
  registerBackend,
  resolveAuth,
  resolveSeeds,
  type Backend,
  type Generated,
} from "@pickrank/adapters";
import { HttpClient } from "../src/http.ts";

describe("registry", () => {
  it("knows comfyui, a1111 and pool, and builds them from specs", () => {
    expect(backendKinds()).toEqual(expect.arrayContaining(["a1111", "comfyui", "pool"]));
    expect(createBackend({ kind: "comfyui", url: "http://127.0.0.1:8188/" }).id).toBe("comfyui@http://127.0.0.1:8188");
    expect(createBackend({ kind: "a1111", url: "https://gpu.example:7860" }).id).toBe("a1111@https://gpu.example:7860");
  });

  it("createBackend with an unknown kind lists the known ones", () => {
    expect(() => createBackend({ kind: "midjourney", url: "http://x" })).toThrow(
      /Expected one of "a1111", "comfyui", .*"pool".* for kind but received "midjourney"/,
    );
  });

  it("registerBackend adds a kind that createBackend then builds", async () => {
    const made: string[] = [];
    registerBackend("echo-test", (spec) => {
      made.push(spec.url);
      const b: Backend = {
        id: `echo-test@${spec.url}`,
        kind: "echo-test",
        maxSeed: 2 ** 32 - 1,
        fingerprint: () => ({ kind: "echo-test" }),
        async *generate(req): AsyncGenerator<Generated> {
          for (const [index, seed] of resolveSeeds(req).entries()) {
            yield {
              ok: true,
              key: String(index),
              seed,
              image: Buffer.from([0x89, 0x50, 0x4e, 0x47]),
              format: "png",
              backend: `echo-test@${spec.url}`,
              timings: { queuedMs: 0, renderMs: 0, totalMs: 0 },
            };
          }
        },
        check: async () => ({ ok: true, backend: `echo-test@${spec.url}`, kind: "echo-test" }),
        close: async () => undefined,
      };
      return b;
    });
    const b = createBackend({ kind: "echo-test", url: "mem://1" });
    const seeds: number[] = [];
    for await (const g of b.generate({ prompt: "x", n: 3, seed: 9 })) seeds.push(g.seed);
    expect(seeds).toEqual([9, 10, 11]);
    expect(made).toEqual(["mem://1"]);
    expect(() => registerBackend("Bad Kind", () => b)).toThrow(/lower-case name/);
  });
});

describe("parseEndpoint", () => {
  it("moves credentials from the URL into a Basic header and out of the base", () => {
    const ep = parseEndpoint("http://ann:p%40ss@host:8188/api/?x=1", undefined, "ComfyUI");
    expect(ep.base).toBe("http://host:8188/api");
    expect(ep.authorization).toBe(`Basic ${Buffer.from("ann:p@ss").toString("base64")}`);
  });

  it("takes user:password or a full header as auth", () => {
    expect(parseEndpoint("http://h", "u:p", "x").authorization).toBe(`Basic ${Buffer.from("u:p").toString("base64")}`);
    expect(parseEndpoint("http://h", "Bearer abc.def", "x").authorization).toBe("Bearer abc.def");
  });

  it("rejects non-http URLs without echoing credentials", () => {
    expect(() => parseEndpoint("ftp://u:secret@h", undefined, "ComfyUI")).toThrow(
      'Expected an http:// or https:// URL of the ComfyUI server for url but received "ftp://***@h" of type string',
    );
    expect(() => parseEndpoint("not a url", undefined, "ComfyUI")).toThrow(/for url but received "not a url"/);
    expect(redactUrl("https://a:b@c/d")).toBe("https://***@c/d");
  });
});

describe("resolveSeeds", () => {
  it("counts up from seed, honours exact seeds, and names bad ones", () => {
    expect(resolveSeeds({ prompt: "x", n: 3, seed: 5 })).toEqual([5, 6, 7]);
    expect(resolveSeeds({ prompt: "x", n: 2, seeds: [9, 1] })).toEqual([9, 1]);
    expect(resolveSeeds({ prompt: "x", n: 2 })).toHaveLength(2);
    expect(() => resolveSeeds({ prompt: "x", n: 2, seeds: [1, -1] })).toThrow(
      "Expected non-negative integer for seeds[1] but received -1 of type number",
    );
    expect(() => resolveSeeds({ prompt: "x", n: 1.5 })).toThrow("Expected positive integer for n but received 1.5 of type number");
    expect(() => resolveSeeds({ prompt: 3 as unknown as string, n: 1 })).toThrow(
      "Expected a string for prompt but received 3 of type number",
    );
  });
});

describe("credentials", () => {
  it("parseEndpoint: a bare % in the URL's password is BAD_INPUT saying to write %25, without echoing the password", () => {
    let err: unknown;
    try {
      parseEndpoint("http://admin:50%off@host:7860", undefined, "Automatic1111");
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: "BAD_INPUT", details: { parameter: "url" } });
    expect((err as Error).message).toMatch(
      /^Expected a percent-encoded password in the URL's user:password but it holds a "%" that starts no %XX escape; write "%" as "%25"/,
    );
    expect((err as Error).message).not.toContain("50%off");
    expect(parseEndpoint("http://admin:50%25off@host", undefined, "x").authorization).toBe(
      `Basic ${Buffer.from("admin:50%off").toString("base64")}`,
    );
  });

  it("resolveAuth: --auth, else --auth-file's one line, else PICKRANK_AUTH; never the value in messages", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "pickrank-auth-"));
    const file = path.join(dir, "cred");
    await writeFile(file, "ann:s3cret pw\n");
    expect(await resolveAuth({ auth: "u:p", env: { PICKRANK_AUTH: "e:v" } })).toEqual({ auth: "u:p", source: "--auth" });
    expect(await resolveAuth({ authFile: file, env: { PICKRANK_AUTH: "e:v" } })).toEqual({ auth: "ann:s3cret pw", source: "--auth-file" });
    expect(await resolveAuth({ env: { PICKRANK_AUTH: "Bearer tok" } })).toEqual({ auth: "Bearer tok", source: "PICKRANK_AUTH" });
    expect(await resolveAuth({ env: {} })).toBeUndefined();
    await expect(resolveAuth({ auth: "a:b", authFile: file })).rejects.toMatchObject({ code: "BAD_INPUT" });
    await expect(resolveAuth({ authFile: path.join(dir, "nope") })).rejects.toMatchObject({
      code: "NOT_FOUND",
      details: { option: "--auth-file" },
    });
    await writeFile(file, "a:b\nc:d\n");
    const two = await resolveAuth({ authFile: file }).catch((e: Error) => e);
    expect(two).toMatchObject({
      code: "BAD_INPUT",
      message: `Expected one line (user:password or an Authorization header value) in the --auth-file ${file} but found 2`,
    });
    await rm(dir, { recursive: true, force: true });
  });
});

describe("HttpClient", () => {
  it("retries a GET that got 503 with exponential delays, and counts only good answers as signs of life", async () => {
    let hits = 0;
    const server = createServer((_req, res) => {
      hits++;
      res.writeHead(hits < 3 ? 503 : 200, { "content-type": "application/json" });
      res.end(hits < 3 ? "{}" : '{"ok":true}');
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const http = new HttpClient(parseEndpoint(url, undefined, "x"), "x@test", { timeoutMs: 5000, retries: 2, retryDelayMs: 5 }, () => ({
      message: "down",
    }));
    expect(await http.request("GET", "/a")).toEqual({ ok: true });
    expect(hits).toBe(3);
    expect(http.lastAnswerAt).toBeGreaterThan(0);
    hits = 0;
    const err = await http.request("POST", "/b").catch((e: Error & { code?: string }) => e);
    expect(err).toMatchObject({ code: "BACKEND_REJECTED", details: { status: 503 } });
    expect(hits).toBe(1); // POST is not retried
    await new Promise<void>((r) => server.close(() => r()));
  });
});
