import { mkdtemp, rm, writeFile, cp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Scorer } from "../src/index.ts";
import { describeDeviceReport, openOnDevice, parseDeviceRequest } from "../src/runtime/device.ts";
import { cudaProviderMissing, openSession } from "../src/runtime/ort.ts";
import { PickrankError } from "@pickrank/contract";
import { removeTinyModels, tinyModel } from "../../../test/helpers/tiny-model.ts";

afterAll(removeTinyModels);

describe("parseDeviceRequest", () => {
  it("accepts auto, cpu, webgpu, cuda", () => {
    for (const d of ["auto", "cpu", "webgpu", "cuda"]) expect(parseDeviceRequest(d)).toBe(d);
  });
  it("rejects an unknown device naming the choices", () => {
    expect(() => parseDeviceRequest("gpu")).toThrowError(
      /Expected one of auto, cpu, webgpu, cuda for device but received "gpu" of type string/,
    );
  });
});

describe("openOnDevice", () => {
  it("auto skips devices that cannot start, says why, and lands on the next", async () => {
    const { value, report } = await openOnDevice("auto", async (d) => {
      if (d !== "cpu") throw new PickrankError("DEVICE_UNAVAILABLE", `no ${d} here`);
      return d;
    });
    expect(value).toBe("cpu");
    expect(report.chosen).toBe("cpu");
    expect(report.skipped.map((s) => s.device)).toEqual(["cuda", "webgpu"]);
    for (const s of report.skipped) {
      expect(s.reason.length).toBeGreaterThan(0);
      expect(s.summary.length).toBeLessThanOrEqual(60);
    }
    const line = describeDeviceReport(report);
    expect(line).toMatch(/^device cpu \(auto; skipped cuda: .+, webgpu: .+\)$/);
    expect(describeDeviceReport(report, true).length).toBeGreaterThanOrEqual(line.length);
  });

  it("auto does not hide a broken model behind a fallback", async () => {
    const tried: string[] = [];
    await expect(
      openOnDevice("auto", async (d) => {
        tried.push(d);
        throw new PickrankError("BAD_MODEL", "graph is corrupt");
      }),
    ).rejects.toMatchObject({ code: "BAD_MODEL" });
    expect(tried.length).toBe(1);
  });

  it("auto fails with every reason when no device starts", async () => {
    await expect(
      openOnDevice("auto", async (d) => {
        throw new PickrankError("DEVICE_UNAVAILABLE", `no ${d}`);
      }),
    ).rejects.toThrowError(/^No device could run the model: cuda: .+; webgpu: .+; cpu: no cpu$/);
  });

  it("an explicit device that fails is an error, not a fallback", async () => {
    const tried: string[] = [];
    await expect(
      openOnDevice("webgpu", async (d) => {
        tried.push(d);
        throw new PickrankError("DEVICE_UNAVAILABLE", "no adapter");
      }),
    ).rejects.toMatchObject({ code: "DEVICE_UNAVAILABLE" });
    expect(tried).toEqual(["webgpu"]);
  });
});

describe("openSession on real providers", () => {
  it("cuda without its provider library names the missing file and how to install it", async () => {
    const missing = cudaProviderMissing();
    const model = await tinyModel();
    if (missing === undefined) {
      // A machine with the CUDA provider installed: the session must start on CUDA.
      const s = await openSession(path.join(model, "vision.onnx"), "cuda").catch((e: unknown) => e);
      expect(s instanceof PickrankError ? s.code : "started").toMatch(/started|DEVICE_UNAVAILABLE/);
      return;
    }
    expect(missing).toMatch(/libonnxruntime_providers_cuda|no CUDA provider/);
    await expect(openSession(path.join(model, "vision.onnx"), "cuda")).rejects.toMatchObject({
      code: "DEVICE_UNAVAILABLE",
      message: expect.stringMatching(/Cannot use device "cuda": .*ONNXRUNTIME_NODE_INSTALL=cuda12/),
    });
  });

  it("webgpu either starts or fails with DEVICE_UNAVAILABLE naming the cause", async () => {
    const model = await tinyModel();
    const r = await openSession(path.join(model, "text.onnx"), "webgpu").then(
      async (s) => {
        await s.release();
        return "started" as const;
      },
      (e: unknown) => e,
    );
    if (r === "started") return; // a machine with a WebGPU adapter
    expect(r).toBeInstanceOf(PickrankError);
    expect((r as PickrankError).code).toBe("DEVICE_UNAVAILABLE");
    // Without a Vulkan loader we say what to install; with one but no usable GPU, Dawn's own reason.
    expect((r as PickrankError).message).toMatch(/^Cannot use device "webgpu": .*(libvulkan1|adapter)/i);
  });

  it("a file that is not an ONNX graph is BAD_MODEL on the cpu", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "pickrank-dev-"));
    try {
      const f = path.join(dir, "broken.onnx");
      await writeFile(f, "this is not protobuf");
      await expect(openSession(f, "cpu")).rejects.toMatchObject({ code: "BAD_MODEL", message: expect.stringContaining("broken.onnx") });
      await expect(openSession(path.join(dir, "missing.onnx"), "cpu")).rejects.toMatchObject({
        code: "BAD_MODEL",
        message: expect.stringContaining("does not exist"),
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("Scorer.create device choice", () => {
  it("auto reports the chosen device and why the others were skipped", async () => {
    const scorer = await Scorer.create({ model: await tinyModel(), device: "auto" });
    try {
      expect(["cpu", "webgpu", "cuda"]).toContain(scorer.device);
      expect(scorer.deviceReport.requested).toBe("auto");
      if (scorer.device === "cpu") expect(scorer.deviceReport.skipped.map((s) => s.device)).toEqual(["cuda", "webgpu"]);
      expect(scorer.describeDevice()).toContain(scorer.device);
    } finally {
      await scorer.dispose();
    }
  });

  it("an unknown device is BAD_INPUT before anything loads", async () => {
    await expect(Scorer.create({ model: "/nonexistent", device: "tpu" as never })).rejects.toMatchObject({ code: "BAD_INPUT" });
  });

  it("a model folder whose vision graph is corrupt fails as BAD_MODEL even with device auto", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "pickrank-dev-"));
    try {
      const copy = path.join(dir, "m");
      await cp(await tinyModel(), copy, { recursive: true });
      await writeFile(path.join(copy, "vision.onnx"), Buffer.from([1, 2, 3, 4]));
      await expect(Scorer.create({ model: copy, device: "auto" })).rejects.toMatchObject({ code: "BAD_MODEL" });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
