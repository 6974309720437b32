/**
 * `eval run`'s configurations (--configs file, --config flags) and its progress line.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PickrankError } from "@pickrank/contract";
import { loadConfigs, parseConfigFlag, readConfigFile } from "../src/eval-config.ts";
import { settingsDifference } from "../src/eval-common.ts";
import { EvalProgress, formatDuration } from "../src/eval-progress.ts";

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-eval-config-"));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

describe("eval configurations", () => {
  it("a --configs file: paths relative to it, url lists as pools, defaults per backend", async () => {
    const f = path.join(tmp, "configs.json");
    await writeFile(
      f,
      JSON.stringify({
        configs: [
          { name: "sd15", workflow: "wf/api.json", checkpoint: "sd15.safetensors", params: { steps: 25, cfgScale: 7 } },
          { name: "xl", backend: "a1111", url: ["http://h1:7860", "http://h2:7860"], negativePrompt: "blurry, low quality" },
        ],
      }),
    );
    const [a, b] = await readConfigFile(f);
    expect(a).toEqual({
      name: "sd15",
      backend: "comfyui",
      urls: ["http://127.0.0.1:8188"],
      workflow: path.join(tmp, "wf/api.json"),
      params: { steps: 25, cfgScale: 7, checkpoint: "sd15.safetensors" },
    });
    expect(b).toMatchObject({ backend: "a1111", urls: ["http://h1:7860", "http://h2:7860"], negativePrompt: "blurry, low quality" });
  });

  it("--config key=value pairs map to the same fields", () => {
    expect(
      parseConfigFlag("name=x,backend=a1111,url=http://a:1,url=http://b:2,steps=20,cfg=6.5,width=512,sampler=Euler a,concurrency=3"),
    ).toEqual({
      name: "x",
      backend: "a1111",
      urls: ["http://a:1", "http://b:2"],
      params: { steps: 20, cfgScale: 6.5, width: 512, sampler: "Euler a" },
      concurrency: 3,
    });
  });

  it("EXPECTED FAILURE - a wrong field names the configuration and the field", async () => {
    const f = path.join(tmp, "bad.json");
    await writeFile(f, JSON.stringify([{ name: "ok" }, { name: "second", params: { steps: 2.5 } }]));
    const e = (await readConfigFile(f).catch((x) => x)) as PickrankError;
    expect(e.code).toBe("BAD_INPUT");
    expect(e.message).toMatch(/^Expected params\.steps of configuration second in --configs .*bad\.json: /);
    await writeFile(f, JSON.stringify({ configs: [{ name: "w", url: 3 }] }));
    expect(((await readConfigFile(f).catch((x) => x)) as PickrankError).message).toMatch(/^Expected url of configuration w in --configs/);
    expect(() => parseConfigFlag("name=x,steps=many")).toThrow(/Expected a number for steps= in --config but received "many"/);
    expect(() => parseConfigFlag("name=a b")).toThrow(/Expected name .*letters, digits/);
    expect(() => parseConfigFlag("name=x,backend=a1111,workflow=w.json")).toThrow(/workflow only with backend comfyui/);
  });

  it("EXPECTED FAILURE - none, two with one name, or an unknown backend", async () => {
    await expect(loadConfigs(undefined, [])).rejects.toThrow(/at least one configuration/);
    await expect(loadConfigs(undefined, ["name=a", "name=a"])).rejects.toThrow(/unique configuration names but a appears twice/);
    // The user's key (backend), the configuration, and only the kinds a configuration may use (not "pool").
    const e = (await loadConfigs(undefined, ["name=sd15,backend=comfy"]).catch((x) => x)) as PickrankError;
    expect(e.code).toBe("BAD_INPUT");
    expect(e.message).toBe('Expected backend of configuration sd15 to be one of "a1111", "comfyui" but received "comfy"');
  });
});

describe("eval resume check", () => {
  it("names the configuration and the field that differ, with short values, never the whole workflow", () => {
    const workflow = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [String(i), { class_type: "Node", inputs: { i } }]));
    const cfg = (ckpt: string, name = "sd15") => ({ name, backend: "comfyui", params: { checkpoint: ckpt }, fingerprint: { workflow } });
    const before = { command: "run", n: 4, configs: [cfg("nope.safetensors")] };
    expect(settingsDifference(before, { ...before, configs: [cfg("sd15.safetensors")] })).toEqual({
      setting: "configs",
      text: 'configuration "sd15" differs: checkpoint nope.safetensors → sd15.safetensors',
    });
    const long = { ...workflow, "7": { class_type: "Node", inputs: { text: "x".repeat(500) } } };
    const text = settingsDifference(before, {
      ...before,
      configs: [{ ...cfg("nope.safetensors"), fingerprint: { workflow: long } }],
    })!.text;
    expect(text).toBe(`configuration "sd15" differs: fingerprint.workflow.7.inputs.i 7 → (none)`);
    expect(settingsDifference(before, { ...before, configs: [cfg("nope.safetensors", "xl")] })!.text).toBe('configuration "xl" is new');
    expect(settingsDifference(before, { ...before, model: "/m/" + "a".repeat(100) })!.text).toBe(
      `model differs: (none) → /m/${"a".repeat(56)}…`,
    );
    expect(settingsDifference(before, before)).toBeUndefined();
  });
});

describe("eval progress", () => {
  it("rate, ETA and per-server throughput from the engine's events (this run's work only)", () => {
    let text = "";
    const stderr = new Writable({
      write: (c, _e, cb) => {
        text += String(c);
        cb();
      },
    });
    let now = 0;
    const p = new EvalProgress({ stdout: stderr, stderr }, false, () => now);
    p.on({ type: "start", total: 10, done: 2 });
    now = 4000;
    for (const backend of ["comfyui@a", "comfyui@a", "a1111@b", "a1111@b"]) {
      p.on({ type: "rendered", config: "c", promptId: "p", seedIndex: 0, backend, reused: false });
      p.on({ type: "scored", config: "c", promptId: "p", seedIndex: 0 });
    }
    p.on({ type: "rendered", config: "c", promptId: "p", seedIndex: 0, backend: "a1111@b", reused: true });
    // 4 scored in 4 s: 1/s, 4 left: ETA 4s; each server 2 renders in 4 s (the replayed one does not count).
    expect(p.detail()).toBe("1.00 img/s · ETA 4s · comfyui@a 0.50/s, a1111@b 0.50/s");
    expect(text).toContain("eval ");
    // The closing line: the same rates without the ETA, each part separated by " · ".
    p.finish();
    expect(text.trim().split("\n").at(-1)).toBe("eval: 6/10 scored in 4s · 1.00 img/s · comfyui@a 0.50/s, a1111@b 0.50/s");
    expect(formatDuration(3725)).toBe("1h02m");
    expect(formatDuration(185)).toBe("3m05s");
  });
});
