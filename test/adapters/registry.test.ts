import { describe, expect, it } from "vitest";
import { backendKinds, createBackend, parseEndpoint, redactUrl, registerBackend, resolveSeeds, type Backend, type Generated } from "@pickrank/adapters";

describe("registry", () => {
  it("knows comfyui, a1111 and pool, and builds them from specs", () => {
    expect(backendKinds()).toEqual(expect.arrayContaining(["a1111", "comfyui", "pool"]));
    expect(createBackend({ kind: "comfyui", url: "http://127.0.0.1:8188/" }).id).toBe("comfyui@http://127.0.0.1:8188");
    expect(createBackend({ kind: "a1111", url: "https://gpu.example:7860" }).id).toBe("a1111@https://gpu.example:7860");
  });

  it("createBackend with an unknown kind lists the known ones", () => {
    expect(() => createBackend({ kind: "midjourney", url: "http://x" })).toThrow(/Expected one of "a1111", "comfyui", .*"pool".* for kind but received "midjourney"/);
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
            yield { ok: true, key: String(index), seed, image: Buffer.from([0x89, 0x50, 0x4e, 0x47]), format: "png", backend: `echo-test@${spec.url}`, timings: { queuedMs: 0, renderMs: 0, totalMs: 0 } };
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
    expect(() => parseEndpoint("ftp://u:secret@h", undefined, "ComfyUI")).toThrow("Expected an http:// or https:// URL of the ComfyUI server for url but received \"ftp://***@h\" of type string");
    expect(() => parseEndpoint("not a url", undefined, "ComfyUI")).toThrow(/for url but received "not a url"/);
    expect(redactUrl("https://a:b@c/d")).toBe("https://***@c/d");
  });
});

describe("resolveSeeds", () => {
  it("counts up from seed, honours exact seeds, and names bad ones", () => {
    expect(resolveSeeds({ prompt: "x", n: 3, seed: 5 })).toEqual([5, 6, 7]);
    expect(resolveSeeds({ prompt: "x", n: 2, seeds: [9, 1] })).toEqual([9, 1]);
    expect(resolveSeeds({ prompt: "x", n: 2 })).toHaveLength(2);
    expect(() => resolveSeeds({ prompt: "x", n: 2, seeds: [1, -1] })).toThrow("Expected non-negative integer for seeds[1] but received -1 of type number");
    expect(() => resolveSeeds({ prompt: "x", n: 1.5 })).toThrow("Expected positive integer for n but received 1.5 of type number");
    expect(() => resolveSeeds({ prompt: 3 as unknown as string, n: 1 })).toThrow("Expected a string for prompt but received 3 of type number");
  });
});
