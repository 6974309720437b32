/** Shared by the converter tests: the reference outputs, running a converted tiny model, error metric. */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { expect } from "vitest";
import { openSession, type DeviceName } from "../src/runtime/ort.ts";
import { referenceDir } from "../../../test/helpers/paths.ts";

export interface Reference {
  prompts: string[];
  images: string[];
  input_ids: number[][];
  logit_scale: number;
  text_embeds_unnormalized: number[][];
  image_embeds_unnormalized: number[][];
  text_embeds: number[][];
  image_embeds: number[][];
  /** [image][prompt] */
  logits_per_image: number[][];
  /** [prompt][image] */
  probs_over_images_per_prompt: number[][];
}

export async function loadReference(): Promise<Reference> {
  return JSON.parse(await readFile(path.join(referenceDir, "model.json"), "utf8")) as Reference;
}

const PIXELS = 3 * 224 * 224;

export async function loadPixels(ref: Reference): Promise<Float32Array> {
  const all = new Float32Array(ref.images.length * PIXELS);
  for (const [i, img] of ref.images.entries()) {
    const buf = await readFile(path.join(referenceDir, "pixel_values", `${path.basename(img)}.bin`));
    expect(buf.byteLength).toBe(PIXELS * 4);
    all.set(new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)), i * PIXELS);
  }
  return all;
}

export interface TinyOutputs {
  /** [prompts, projection] row-major, unnormalized */
  text: Float32Array;
  /** [images, projection] row-major, unnormalized */
  image: Float32Array;
}

/**
 * Runs text.onnx on all reference prompts and vision.onnx on all reference images (or the graphs
 * `files` names), one batch each, through the runtime's own sessions on the given device.
 */
export async function runTiny(
  dir: string,
  ref: Reference,
  device: DeviceName = "cpu",
  files: { text: string; vision: string } = { text: "text.onnx", vision: "vision.onnx" },
): Promise<TinyOutputs> {
  const text = await openSession(path.join(dir, files.text), device);
  try {
    const vision = await openSession(path.join(dir, files.vision), device);
    try {
      const ids = BigInt64Array.from(ref.input_ids.flat().map(BigInt));
      const t = await text.run({ input_ids: { type: "int64", data: ids, dims: [ref.input_ids.length, 77] } });
      const v = await vision.run({
        pixel_values: { type: "float32", data: await loadPixels(ref), dims: [ref.images.length, 3, 224, 224] },
      });
      return { text: t.text_embeds!.data as Float32Array, image: v.image_embeds!.data as Float32Array };
    } finally {
      await vision.release();
    }
  } finally {
    await text.release();
  }
}

/** Max relative error of every output the reference holds (embeddings, logits, probabilities). */
export function referenceErrors(o: TinyOutputs, ref: Reference): Record<string, number> {
  const s = scoreAll(o, ref.logit_scale);
  return {
    text_embeds_unnormalized: maxRelErr(o.text, ref.text_embeds_unnormalized.flat()),
    image_embeds_unnormalized: maxRelErr(o.image, ref.image_embeds_unnormalized.flat()),
    text_embeds: maxRelErr(s.textNorm, ref.text_embeds.flat()),
    image_embeds: maxRelErr(s.imageNorm, ref.image_embeds.flat()),
    logits_per_image: maxRelErr(s.logitsPerImage, ref.logits_per_image.flat()),
    probs_over_images_per_prompt: maxRelErr(s.probs, ref.probs_over_images_per_prompt.flat()),
  };
}

/** For each prompt, the index of the image with the highest logit ([image][prompt] row-major). */
export function bestImagePerPrompt(logitsPerImage: ArrayLike<number>, ref: Reference): number[] {
  return ref.prompts.map((_, p) => {
    const col = Array.from({ length: ref.images.length }, (_, i) => logitsPerImage[i * ref.prompts.length + p]!);
    return col.indexOf(Math.max(...col));
  });
}

function normalizeRows(m: Float32Array, dim: number): Float64Array {
  const out = new Float64Array(m.length);
  for (let r = 0; r < m.length / dim; r++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += m[r * dim + j]! ** 2;
    const n = Math.sqrt(s);
    for (let j = 0; j < dim; j++) out[r * dim + j] = m[r * dim + j]! / n;
  }
  return out;
}

/** The PickScore scoring on our embeddings: normalized embeddings, logits [image][prompt], probs [prompt][image]. */
export function scoreAll(o: TinyOutputs, logitScale: number, dim = 16) {
  const textNorm = normalizeRows(o.text, dim);
  const imageNorm = normalizeRows(o.image, dim);
  const P = textNorm.length / dim;
  const I = imageNorm.length / dim;
  const logitsPerImage = new Float64Array(I * P);
  for (let i = 0; i < I; i++)
    for (let p = 0; p < P; p++) {
      let d = 0;
      for (let j = 0; j < dim; j++) d += imageNorm[i * dim + j]! * textNorm[p * dim + j]!;
      logitsPerImage[i * P + p] = Math.exp(logitScale) * d;
    }
  const probs = new Float64Array(P * I);
  for (let p = 0; p < P; p++) {
    let max = -Infinity;
    for (let i = 0; i < I; i++) max = Math.max(max, logitsPerImage[i * P + p]!);
    let sum = 0;
    for (let i = 0; i < I; i++) sum += Math.exp(logitsPerImage[i * P + p]! - max);
    for (let i = 0; i < I; i++) probs[p * I + i] = Math.exp(logitsPerImage[i * P + p]! - max) / sum;
  }
  return { textNorm, imageNorm, logitsPerImage, probs };
}

/** max |a − b| / max |b|: relative to the output's scale. */
export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs reference ${b.length}`);
  let scale = 0;
  let err = 0;
  for (let i = 0; i < b.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]!));
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
  }
  return err / scale;
}

export interface RawTensor {
  name: string;
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/** Reads every tensor of a safetensors file (test sizes only). */
export async function readSafetensors(file: string): Promise<RawTensor[]> {
  const buf = await readFile(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8")) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  return Object.entries(header)
    .filter(([k]) => k !== "__metadata__")
    .map(([name, e]) => ({
      name,
      dtype: e.dtype,
      shape: e.shape,
      data: new Uint8Array(buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1])),
    }));
}

/** Writes a safetensors file (header padded to 8 bytes like the Python writer). */
export async function writeSafetensors(file: string, tensors: RawTensor[]): Promise<void> {
  const { writeFile } = await import("node:fs/promises");
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let off = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
    off += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  await writeFile(file, Buffer.concat([len, Buffer.from(json), ...tensors.map((t) => Buffer.from(t.data))]));
}
