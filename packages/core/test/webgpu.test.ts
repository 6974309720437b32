/**
 * The WebGPU path, run for real: onnxruntime-node's WebGPU provider (Dawn over Vulkan) on a software
 * Vulkan driver, SwiftShader, which Debian's chromium package ships as a Vulkan ICD. No GPU is
 * needed, so CI checks the graphs WebGPU actually runs (its own kernels) against the Python
 * reference, the Scorer on it, and what `auto` does with a software driver and with an adapter that
 * cannot run fp16. Speed on SwiftShader means nothing; a real card's is docs/benchmarks.md's business.
 *
 * The ICD: $PICKRANK_TEST_VK_ICD, else chromium's SwiftShader manifest. Without one the tests are
 * skipped, saying why, unless $PICKRANK_REQUIRE_WEBGPU is set (.ci/run sets it), where that fails.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const SWIFTSHADER = "/usr/lib/chromium/vk_swiftshader_icd.json";
const icd = process.env.PICKRANK_TEST_VK_ICD || (existsSync(SWIFTSHADER) ? SWIFTSHADER : undefined);
const required = /^(1|true|yes|on)$/i.test(process.env.PICKRANK_REQUIRE_WEBGPU ?? "");

// Before anything starts Dawn: the Vulkan loader reads these when the first instance is created.
// Only this test file's process sees them, so `auto` elsewhere stays on the CPU.
const runtimeDir = mkdtempSync(path.join(os.tmpdir(), "pickrank-xdg-"));
if (icd) {
  process.env.VK_ICD_FILENAMES = icd;
  process.env.VK_DRIVER_FILES = icd;
  // Silences "XDG_RUNTIME_DIR is invalid" from the window-system probing of a headless machine.
  process.env.XDG_RUNTIME_DIR = runtimeDir;
}

const { convertModel } = await import("../src/convert/convert.ts");
const { Scorer } = await import("../src/scorer.ts");
const { tinyClipDir, referenceDir } = await import("../../../test/helpers/paths.ts");
const { bestImagePerPrompt, loadReference, referenceErrors, runTiny, scoreAll } = await import("./convert-helpers.ts");
const { parityBound, TOLERANCES } = await import("./tolerances.ts");
type Reference = Awaited<ReturnType<typeof loadReference>>;

let ref: Reference;
let tmp: string;

const title = "WebGPU provider on a software Vulkan driver (tiny CLIP vs the reference)";
const why =
  icd || required
    ? ""
    : ` — skipped: no software Vulkan driver (looked for ${SWIFTSHADER}; Debian's chromium ships it, or set PICKRANK_TEST_VK_ICD)`;
// The default reporter shows a skipped file as a count only; a console line it does print says why.
if (why) console.warn(title + why);

// SwiftShader runs every shader on the CPU: about 25 s per test alone, minutes on a loaded two-core
// machine. The limit only stops a hung driver; nothing here measures time.
const SWIFTSHADER_TIMEOUT_MS = 600_000;

describe.runIf(icd || required)(title + why, { timeout: SWIFTSHADER_TIMEOUT_MS }, () => {
  beforeAll(async () => {
    if (!icd)
      throw new Error(
        `PICKRANK_REQUIRE_WEBGPU is set but no Vulkan ICD was found (looked for ${SWIFTSHADER}; install Debian's chromium, or set PICKRANK_TEST_VK_ICD)`,
      );
    ref = await loadReference();
    tmp = mkdtempSync(path.join(os.tmpdir(), "pickrank-webgpu-"));
    for (const dtype of ["fp32", "fp16"] as const) await convertModel(tinyClipDir, { out: path.join(tmp, dtype), dtype });
  });
  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    rmSync(runtimeDir, { recursive: true, force: true });
  });

  async function runOnWebgpu(dtype: "fp32" | "fp16") {
    const o = await runTiny(path.join(tmp, dtype), ref, "webgpu");
    return { errors: referenceErrors(o, ref), s: scoreAll(o, ref.logit_scale) };
  }

  it("fp32 graphs on WebGPU match every reference output within the fp32 bounds of tolerances.ts (the CPU's)", async () => {
    const { errors } = await runOnWebgpu("fp32");
    console.log("webgpu fp32 max relative error per output:", JSON.stringify(errors));
    for (const [k, v] of Object.entries(errors)) expect(v, k).toBeLessThan(parityBound("fp32", k));
  });

  it("fp16 graphs: within the CPU run's fp16 bound where the adapter has shader-f16; else DEVICE_UNAVAILABLE saying so, and auto falls back", async () => {
    let res: Awaited<ReturnType<typeof runOnWebgpu>> | undefined;
    try {
      res = await runOnWebgpu("fp16");
    } catch (e) {
      // SwiftShader has no shader-f16: the error must say that, not blame the model.
      expect(e).toMatchObject({ code: "DEVICE_UNAVAILABLE", details: { reason: "no-shader-f16" } });
      expect((e as Error).message).toMatch(/no shader-f16 support, which an fp16 model needs.*--dtype fp32/);
      // What auto does on a GPU without shader-f16: a driver list that is not software-only (a manifest
      // naming a GPU driver, which the loader cannot load here) gets auto past its software check, to
      // SwiftShader, whose f16 refusal must send it on to the CPU.
      const gpuIcd = path.join(tmp, "gpu_icd.json");
      writeFileSync(
        gpuIcd,
        JSON.stringify({ file_format_version: "1.0.0", ICD: { library_path: "libGLX_nvidia.so.0", api_version: "1.3.0" } }),
      );
      process.env.VK_ADD_DRIVER_FILES = gpuIcd;
      const auto = await Scorer.create({ model: path.join(tmp, "fp16"), device: "auto", preprocessWorkers: 0 }).finally(() => {
        delete process.env.VK_ADD_DRIVER_FILES;
      });
      try {
        expect(auto.device).toBe("cpu");
        expect(auto.deviceReport.skipped.find((s) => s.device === "webgpu")?.reason).toContain("shader-f16");
      } finally {
        await auto.dispose();
      }
      console.log("webgpu fp16: this adapter has no shader-f16; checked the error and the fallback instead of the numbers");
      return;
    }
    const { errors, s } = res;
    console.log("webgpu fp16 max relative error per output:", JSON.stringify(errors));
    // The same bound as the CPU provider's fp16 run (convert.test.ts), no wider.
    for (const [k, v] of Object.entries(errors)) expect(v, k).toBeLessThan(parityBound("fp16", k));
    expect(bestImagePerPrompt(s.logitsPerImage, ref)).toEqual(bestImagePerPrompt(ref.logits_per_image.flat(), ref));
  });

  it("fused-no-mha fp32 graphs (SkipLayerNormalization, BiasGelu) on WebGPU hold the fp32 bounds of tolerances.ts", async () => {
    const files = { text: "text.fused-no-mha.onnx", vision: "vision.fused-no-mha.onnx" };
    const errors = referenceErrors(await runTiny(path.join(tmp, "fp32"), ref, "webgpu", files), ref);
    console.log("webgpu fused-no-mha fp32 max relative error per output:", JSON.stringify(errors));
    for (const [k, v] of Object.entries(errors)) expect(v, k).toBeLessThan(parityBound("fp32", k));
  });

  it("KNOWN FAULT - WebGPU's MultiHeadAttention misses the reference (why auto gives WebGPU fused-no-mha, see FUSED_BY_DEVICE)", async () => {
    // onnxruntime-node 1.30 on SwiftShader: the fused graphs' text embeddings are off by 0.36 relative (77 tokens),
    // the image embeddings by 2.4e-3 (257 tokens); the same graphs on the CPU provider hold the fp32 bounds
    // (graph-variants.test.ts), and so do SkipLayerNormalization and BiasGelu here (test above). When this
    // fails, the kernel was fixed: give WebGPU the "fused" variant in FUSED_BY_DEVICE and replace this test.
    const files = { text: "text.fused.onnx", vision: "vision.fused.onnx" };
    const errors = referenceErrors(await runTiny(path.join(tmp, "fp32"), ref, "webgpu", files), ref);
    console.log("webgpu fused (MultiHeadAttention) fp32 max relative error per output:", JSON.stringify(errors));
    expect(errors.text_embeds_unnormalized).toBeGreaterThan(1e-2);
  });

  it("the WebGPU provider takes every com.microsoft node of the fused graphs (none falls back to the CPU): the ops exist there", async () => {
    for (const file of ["vision.fused.onnx", "text.fused.onnx"]) {
      const { stderr } = await promisify(execFile)(
        process.execPath,
        [
          "--conditions=development",
          "--import",
          "tsx",
          path.join(import.meta.dirname, "ort-placement-child.ts"),
          path.join(tmp, "fp32", file),
        ],
        { env: process.env, maxBuffer: 64 << 20 },
      );
      // "Node(s) placed on [WebGpuExecutionProvider]. Number of nodes: 35", then "  MultiHeadAttention (name)" lines.
      const placement = new Map<string, Set<string>>();
      let ep = "";
      for (const line of stderr.split("\n")) {
        const head = /Node\(s\) placed on \[(\w+)\]/.exec(line);
        if (head) ep = head[1]!;
        else if (ep && /VerifyEachNodeIsAssignedToAnEp\]\s{3}\w+ \(/.test(line)) {
          const op = /\]\s{3}(\w+) \(/.exec(line)![1]!;
          placement.set(op, (placement.get(op) ?? new Set()).add(ep));
        } else if (!/VerifyEachNodeIsAssignedToAnEp/.test(line)) ep = "";
      }
      const where = Object.fromEntries([...placement].map(([op, eps]) => [op, [...eps].join(",")]));
      console.log(`${file} node placement on webgpu:`, JSON.stringify(where));
      for (const op of ["MultiHeadAttention", "SkipLayerNormalization", "BiasGelu"]) {
        expect(where[op], `${file} ${op}`).toBe("WebGpuExecutionProvider");
      }
    }
  });

  it("the Scorer runs on webgpu when asked, with the CPU's scores; auto leaves a software-only driver for the CPU", async () => {
    const images = ref.images.map((f) => path.join(referenceDir, "images", path.basename(f)));
    const prompt = ref.prompts[0]!;
    const cpu = await Scorer.create({ model: path.join(tmp, "fp32"), device: "cpu", preprocessWorkers: 0 });
    const gpu = await Scorer.create({ model: path.join(tmp, "fp32"), device: "webgpu", preprocessWorkers: 0, batchSize: 4 });
    const auto = await Scorer.create({ model: path.join(tmp, "fp32"), device: "auto", preprocessWorkers: 0 });
    try {
      expect(gpu.device).toBe("webgpu");
      // SwiftShader is the only driver this process sees: auto must not trade the CPU provider for it.
      expect(auto.device).toBe("cpu");
      expect(auto.deviceReport.skipped.map((s) => s.device)).toEqual(["cuda", "webgpu"]);
      expect(auto.deviceReport.skipped[1]!.reason).toContain("the only Vulkan drivers installed are software ones (libvk_swiftshader.so)");
      const [a, b] = [await cpu.rank(prompt, images), await gpu.rank(prompt, images)];
      expect(b.map((r) => r.index)).toEqual(a.map((r) => r.index));
      const scale = Math.max(...a.map((y) => Math.abs(y.score)));
      const maxScoreErr = Math.max(...a.map((x, i) => Math.abs(x.score - b[i]!.score) / scale));
      console.log("webgpu vs cpu Scorer, max relative score difference:", maxScoreErr);
      expect(maxScoreErr).toBeLessThan(TOLERANCES.webgpuVsCpuScores.bound);
    } finally {
      await Promise.all([cpu.dispose(), gpu.dispose(), auto.dispose()]);
    }
  });
});
