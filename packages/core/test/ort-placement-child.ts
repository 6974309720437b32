/**
 * Child process of webgpu.test.ts: creates one session on the WebGPU provider (CPU as fallback, as
 * pickrank does) with onnxruntime's verbose log on, so stderr carries its node placement ("Node(s) placed
 * on [WebGpuExecutionProvider] …" and one line per node). Verbose logging is process-wide and loud, which
 * is why it runs apart, and why it talks to onnxruntime-node directly rather than through src/runtime.
 * The parent sets the Vulkan driver variables.
 */
import * as ort from "onnxruntime-node";

const file = process.argv[2];
if (!file) throw new Error("usage: ort-placement-child.ts <model.onnx>");
const session = await ort.InferenceSession.create(file, {
  executionProviders: ["webgpu", "cpu"],
  graphOptimizationLevel: "all",
  logSeverityLevel: 0,
  logVerbosityLevel: 0,
});
await session.release();
console.log("created");
