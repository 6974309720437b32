/**
 * The scorer selector tests use. TEMPORARY: a stub with the Scorer's shape until convertModel lands;
 * to be replaced by the real Scorer on the tiny model.
 */
import { createHash } from "node:crypto";
import sharp from "sharp";
import type { SelectorScorer } from "@pickrank/selector";

function norm(v: Float32Array): Float32Array {
  let s = 0;
  for (const x of v) s += x * x;
  const n = Math.sqrt(s) || 1;
  return v.map((x) => x / n);
}

export async function testScorer(): Promise<SelectorScorer & { dispose(): Promise<void> }> {
  const dim = 16;
  return {
    device: "cpu",
    modelDir: "/tmp/stub-model",
    manifest: { source: { repo: "stub/tiny", files: [] }, dtype: "fp32" } as unknown as SelectorScorer["manifest"],
    async embedText(prompt: string) {
      const h = createHash("sha256").update(prompt).digest();
      return norm(Float32Array.from({ length: dim }, (_, i) => h[i]! - 128));
    },
    async embedImages(images) {
      return Promise.all(
        images.map(async (img) => {
          const { data } = await sharp(img as Buffer).resize(4, 4, { fit: "fill" }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
          return norm(Float32Array.from({ length: dim }, (_, i) => data[i * 3]! - data[i * 3 + 1]! + 0.5 * data[i * 3 + 2]! - 64));
        }),
      );
    },
    scoreEmbeddings(text, imgs) {
      const scores = imgs.map((e) => 100 * e.reduce((s, x, i) => s + x * text[i]!, 0));
      const m = Math.max(...scores);
      const ex = scores.map((s) => Math.exp(s - m));
      const z = ex.reduce((a, b) => a + b, 0);
      return scores.map((score, i) => ({ score, prob: ex[i]! / z }));
    },
    async dispose() {},
  };
}
