/**
 * GET /object_info through the client, against the fake ComfyUI that serves ComfyUI's format, and
 * detection fed with that answer (what the ComfyUI backend does before it detects a user's workflow).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ComfyClient, ComfyUIBackend, detectWorkflow } from "@pickrank/adapters";
import { customClass } from "../../../test/fakes/comfyui-object-info.ts";
import { startFakeComfyUI, type FakeComfyUI } from "../../../test/fakes/comfyui-server.ts";
import { reading } from "./workflow-helpers.ts";
import { CUSTOM_ENCODER, OUTPUT_BY_FLAG } from "./workflow-shapes.ts";

let fake: FakeComfyUI;
let newer: FakeComfyUI;

beforeAll(async () => {
  const nodeClasses = {
    T5Conditioner: customClass(
      "T5Conditioner",
      [
        ["clip", "CLIP"],
        ["description", "STRING", { multiline: true }],
      ],
      ["CONDITIONING"],
    ),
    HttpPublisher: customClass(
      "HttpPublisher",
      [
        ["pixels", "IMAGE"],
        ["endpoint", "STRING"],
      ],
      [],
      { outputNode: true },
    ),
    ImageInvert: customClass("ImageInvert", [["image", "IMAGE"]], ["IMAGE"]),
  };
  [fake, newer] = await Promise.all([startFakeComfyUI({ nodeClasses }), startFakeComfyUI({ nodeClasses, comboV2: true, apiOnly: true })]);
});
afterAll(async () => {
  await Promise.all([fake.close(), newer.close()]);
});

describe("ComfyClient.objectInfo", () => {
  it("reads every class as [type, options] tuples with output and output_node, on old and new servers", async () => {
    for (const [server, apiPrefix] of [
      [fake, false],
      [newer, true],
    ] as const) {
      const info = await new ComfyClient(server.url, { apiPrefix }).objectInfo();
      expect(info.KSampler?.input?.required?.seed).toEqual(["INT", expect.objectContaining({ control_after_generate: true })]);
      expect(info.CLIPTextEncode?.input?.required?.text).toEqual(["STRING", { multiline: true, dynamicPrompts: true }]);
      expect(info.CLIPTextEncode?.output).toEqual(["CONDITIONING"]);
      expect(info.SaveImage?.output_node).toBe(true);
      expect(info.VAEDecode?.output_node).toBe(false);
      expect(info.HttpPublisher?.output_node).toBe(true);
      const sampler = info.KSampler?.input?.required?.sampler_name as unknown[];
      expect(apiPrefix ? sampler[0] : Array.isArray(sampler[0])).toBe(apiPrefix ? "COMBO" : true);
    }
  });

  it("asks for one class, and still lists checkpoints through it", async () => {
    const client = new ComfyClient(fake.url);
    expect(Object.keys(await client.objectInfo(undefined, "KSampler"))).toEqual(["KSampler"]);
    expect(await client.objectInfo(undefined, "NoSuchNode")).toEqual({});
    expect(await client.listCheckpoints()).toEqual(["sd15.safetensors", "sdxl_base_1.0.safetensors"]);
  });

  it("says BACKEND_PROTOCOL when the answer is not an object of classes", async () => {
    const bad = await startFakeComfyUI({ faults: { garbage: ["object_info"] } });
    try {
      await expect(new ComfyClient(bad.url, { retries: 0 }).objectInfo()).rejects.toMatchObject({ code: "BACKEND_PROTOCOL" });
    } finally {
      await bad.close();
    }
  });
});

describe("detection with the server's /object_info", () => {
  it("finds a custom encoder and a custom output the graph alone cannot tell", async () => {
    const objectInfo = await new ComfyClient(fake.url).objectInfo();
    expect(reading(detectWorkflow(CUSTOM_ENCODER, {}, { objectInfo }))).toMatchObject({
      positive: ["6.description"],
      negative: ["7.description"],
    });
    expect(detectWorkflow(OUTPUT_BY_FLAG, {}, { objectInfo }).outputs).toEqual([{ node: "20", classType: "HttpPublisher" }]);
  });
});

describe("ComfyUIBackend reads the workflow with the server's /object_info", () => {
  const FAST = { timeoutMs: 5000, retries: 1, retryDelayMs: 20, pollIntervalMs: 50, watchdogMs: 400, connectTimeoutMs: 5000 };

  it("runs a workflow whose prompt input only the server's node types reveal (the graph alone refuses it)", async () => {
    expect(() => detectWorkflow(CUSTOM_ENCODER)).toThrow(/prompt/i);
    const backend = new ComfyUIBackend(fake.url, { ...FAST, workflow: CUSTOM_ENCODER });
    try {
      expect(await backend.check()).toMatchObject({ ok: true });
      const got = [];
      for await (const g of backend.generate({ prompt: "a red kite over dunes", n: 1, seed: 5 })) got.push(g);
      expect(got.map((g) => g.ok)).toEqual([true]);
      const sent = fake.prompts.at(-1)!.prompt;
      expect(sent["6"]?.inputs.description).toBe("a red kite over dunes");
      expect(backend.plan.positive).toEqual([{ node: "6", input: "description" }]);
    } finally {
      await backend.close();
    }
  });

  it("check() reports a workflow the server's types cannot read either as BAD_INPUT (server up), not as a server down", async () => {
    const plain = await startFakeComfyUI();
    const backend = new ComfyUIBackend(plain.url, { ...FAST, workflow: CUSTOM_ENCODER });
    try {
      const report = await backend.check();
      expect(report).toMatchObject({ ok: false, kind: "comfyui", error: { code: "BAD_INPUT" } });
      expect(report.error?.message).toMatch(/--prompt-node/);
    } finally {
      await Promise.all([backend.close(), plain.close()]);
    }
  });
});
