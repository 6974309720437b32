/**
 * Quick device check before the long benchmark runs: opens a (small) converted model on each named
 * device, scores two raw images, and prints which device ran or the whole error (the bench table
 * cuts it to 90 characters). Exit code 0 when every named device worked, 3 when one did not.
 *
 *   node --import tsx packages/core/bench/gpu/probe.ts --model <converted dir> [--devices webgpu,auto]
 */
import { parseArgs } from "node:util";
import { Scorer, type DeviceRequest, type RawImage } from "../../src/index.ts";

const { values } = parseArgs({ options: { model: { type: "string" }, devices: { type: "string", default: "webgpu,auto" } } });
if (!values.model) {
  console.error("usage: probe.ts --model <converted dir> [--devices webgpu,auto]");
  process.exit(2);
}

function image(seed: number): RawImage {
  const width = 256;
  const height = 256;
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + seed * 97) & 0xff;
  return { data, width, height, channels: 3 };
}

function describeError(e: unknown): string {
  const parts: string[] = [];
  for (let cur: unknown = e, depth = 0; cur && depth < 4; cur = (cur as { cause?: unknown }).cause, depth++) {
    const code = (cur as { code?: unknown }).code;
    parts.push(`${code ? `[${String(code)}] ` : ""}${cur instanceof Error ? cur.message : String(cur)}`);
  }
  return parts.join("\n    caused by: ");
}

let failed = 0;
for (const device of (values.devices ?? "").split(",").filter(Boolean) as DeviceRequest[]) {
  const t0 = performance.now();
  try {
    const scorer = await Scorer.create({ model: values.model, device, preprocessWorkers: 0 });
    try {
      const ready = performance.now() - t0;
      const scores = await scorer.score("a probe", [image(1), image(2)]);
      console.log(
        `probe ${device}: OK — ${scorer.describeDevice()}; ready in ${ready.toFixed(0)} ms; scores ${scores.map((s) => s.score.toFixed(4)).join(", ")}`,
      );
    } finally {
      await scorer.dispose();
    }
  } catch (e) {
    failed++;
    console.log(`probe ${device}: FAILED after ${(performance.now() - t0).toFixed(0)} ms\n    ${describeError(e)}`);
  }
}
process.exitCode = failed > 0 ? 3 : 0;
