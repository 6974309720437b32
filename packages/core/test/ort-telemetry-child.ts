/**
 * Child process of ort-telemetry.test.ts: opens one session through the runtime module (as every
 * pickrank command does) on the model file given, releases it, and prints whether pickrank kept
 * onnxruntime's telemetry off. The parent decides HOME and ORT_DISABLE_TELEMETRY.
 */
import { disableOrtTelemetryUnlessOptedIn, openSession } from "../src/runtime/ort.ts";

const file = process.argv[2];
if (!file) throw new Error("usage: ort-telemetry-child.ts <model.onnx>");
const session = await openSession(file, "cpu");
await session.release();
console.log(JSON.stringify({ off: disableOrtTelemetryUnlessOptedIn(), value: process.env.ORT_DISABLE_TELEMETRY ?? null }));
