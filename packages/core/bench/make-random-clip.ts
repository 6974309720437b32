/**
 * Writes a Hugging Face-style CLIPModel folder (config.json + model.safetensors) with random weights,
 * in the PickScore_v1 layout, at any size. `--size pickscore` gives the real ViT-H/14 dimensions
 * (≈3.9 GB fp32), which is what the benchmark and the large-model converter check need: the real
 * weights cannot be downloaded everywhere, and speed and memory do not depend on the values.
 *
 *   pnpm tsx packages/core/bench/make-random-clip.ts --size pickscore --out /tmp/pickscore-random [--dtype fp16]
 */
import { mkdir, open, writeFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";

export interface ClipDims {
  textWidth: number;
  textLayers: number;
  textHeads: number;
  textMlp: number;
  visionWidth: number;
  visionLayers: number;
  visionHeads: number;
  visionMlp: number;
  projection: number;
}

export const SIZES: Record<string, ClipDims> = {
  // laion/CLIP-ViT-H-14 = PickScore_v1
  pickscore: {
    textWidth: 1024,
    textLayers: 24,
    textHeads: 16,
    textMlp: 4096,
    visionWidth: 1280,
    visionLayers: 32,
    visionHeads: 16,
    visionMlp: 5120,
    projection: 1024,
  },
  // ViT-B/16-sized, for quicker runs
  base: {
    textWidth: 512,
    textLayers: 12,
    textHeads: 8,
    textMlp: 2048,
    visionWidth: 768,
    visionLayers: 12,
    visionHeads: 12,
    visionMlp: 3072,
    projection: 512,
  },
  small: {
    textWidth: 128,
    textLayers: 2,
    textHeads: 4,
    textMlp: 256,
    visionWidth: 128,
    visionLayers: 2,
    visionHeads: 4,
    visionMlp: 256,
    projection: 64,
  },
};

type Init = "normal" | "ones" | "zeros";

function tensors(d: ClipDims): { name: string; shape: number[]; init: Init }[] {
  const out: { name: string; shape: number[]; init: Init }[] = [];
  const ln = (prefix: string, w: number) => {
    out.push({ name: `${prefix}.bias`, shape: [w], init: "zeros" }, { name: `${prefix}.weight`, shape: [w], init: "ones" });
  };
  const layers = (prefix: string, w: number, n: number, mlp: number) => {
    for (let i = 0; i < n; i++) {
      const p = `${prefix}.encoder.layers.${i}`;
      ln(`${p}.layer_norm1`, w);
      ln(`${p}.layer_norm2`, w);
      out.push(
        { name: `${p}.mlp.fc1.bias`, shape: [mlp], init: "zeros" },
        { name: `${p}.mlp.fc1.weight`, shape: [mlp, w], init: "normal" },
      );
      out.push({ name: `${p}.mlp.fc2.bias`, shape: [w], init: "zeros" }, { name: `${p}.mlp.fc2.weight`, shape: [w, mlp], init: "normal" });
      for (const proj of ["k_proj", "out_proj", "q_proj", "v_proj"]) {
        out.push(
          { name: `${p}.self_attn.${proj}.bias`, shape: [w], init: "zeros" },
          { name: `${p}.self_attn.${proj}.weight`, shape: [w, w], init: "normal" },
        );
      }
    }
  };
  out.push({ name: "text_model.embeddings.position_embedding.weight", shape: [77, d.textWidth], init: "normal" });
  out.push({ name: "text_model.embeddings.token_embedding.weight", shape: [49408, d.textWidth], init: "normal" });
  layers("text_model", d.textWidth, d.textLayers, d.textMlp);
  ln("text_model.final_layer_norm", d.textWidth);
  out.push({ name: "text_projection.weight", shape: [d.projection, d.textWidth], init: "normal" });
  out.push({ name: "vision_model.embeddings.class_embedding", shape: [d.visionWidth], init: "normal" });
  out.push({ name: "vision_model.embeddings.patch_embedding.weight", shape: [d.visionWidth, 3, 14, 14], init: "normal" });
  out.push({ name: "vision_model.embeddings.position_embedding.weight", shape: [257, d.visionWidth], init: "normal" });
  layers("vision_model", d.visionWidth, d.visionLayers, d.visionMlp);
  ln("vision_model.post_layernorm", d.visionWidth);
  ln("vision_model.pre_layrnorm", d.visionWidth);
  out.push({ name: "visual_projection.weight", shape: [d.projection, d.visionWidth], init: "normal" });
  return out;
}

function config(d: ClipDims): unknown {
  return {
    architectures: ["CLIPModel"],
    model_type: "clip",
    logit_scale_init_value: 4.6052,
    projection_dim: d.projection,
    text_config: {
      hidden_act: "gelu",
      hidden_size: d.textWidth,
      intermediate_size: d.textMlp,
      num_attention_heads: d.textHeads,
      num_hidden_layers: d.textLayers,
      max_position_embeddings: 77,
      vocab_size: 49408,
      layer_norm_eps: 1e-5,
      bos_token_id: 0,
      eos_token_id: 2,
      pad_token_id: 1,
      projection_dim: d.projection,
    },
    vision_config: {
      hidden_act: "gelu",
      hidden_size: d.visionWidth,
      intermediate_size: d.visionMlp,
      num_attention_heads: d.visionHeads,
      num_hidden_layers: d.visionLayers,
      image_size: 224,
      patch_size: 14,
      num_channels: 3,
      layer_norm_eps: 1e-5,
      projection_dim: d.projection,
    },
  };
}

/** xorshift32: fast, seeded, good enough for weights whose values do not matter. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

function f32ToF16(v: number): number {
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = ((x >>> 23) & 0xff) - 127 + 15;
  const mant = x & 0x7fffff;
  if (exp <= 0) return sign;
  if (exp >= 31) return sign | 0x7c00;
  return sign | (exp << 10) | (mant >>> 13);
}

export async function makeRandomClip(out: string, dims: ClipDims, dtype: "fp32" | "fp16" = "fp32", seed = 1): Promise<void> {
  await mkdir(out, { recursive: true });
  await writeFile(path.join(out, "config.json"), JSON.stringify(config(dims), null, 2));
  const list = tensors(dims);
  const bytesPer = dtype === "fp32" ? 4 : 2;
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let offset = 0;
  const all = [...list, { name: "logit_scale", shape: [] as number[], init: "normal" as Init }];
  for (const t of all) {
    const isScale = t.name === "logit_scale";
    const size = t.shape.reduce((a, b) => a * b, 1) * (isScale ? 4 : bytesPer);
    header[t.name] = { dtype: isScale ? "F32" : dtype === "fp32" ? "F32" : "F16", shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const fh = await open(path.join(out, "model.safetensors"), "w");
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    await fh.write(len);
    await fh.write(json);
    const rand = rng(seed);
    for (const t of all) {
      if (t.name === "logit_scale") {
        const b = Buffer.alloc(4);
        b.writeFloatLE(4.6052);
        await fh.write(b);
        continue;
      }
      const n = t.shape.reduce((a, b) => a * b, 1);
      const chunk = 1 << 20;
      for (let start = 0; start < n; start += chunk) {
        const m = Math.min(chunk, n - start);
        const buf = Buffer.alloc(m * bytesPer);
        for (let i = 0; i < m; i++) {
          // Uniform in ±0.035 has std ≈ 0.02, the usual CLIP init scale.
          const v = t.init === "ones" ? 1 : t.init === "zeros" ? 0 : (rand() - 0.5) * 0.07;
          if (dtype === "fp32") buf.writeFloatLE(v, i * 4);
          else buf.writeUInt16LE(f32ToF16(v), i * 2);
        }
        await fh.write(buf);
      }
    }
  } finally {
    await fh.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: { size: { type: "string", default: "pickscore" }, out: { type: "string" }, dtype: { type: "string", default: "fp32" } },
  });
  const dims = SIZES[values.size ?? ""];
  if (!dims || !values.out || (values.dtype !== "fp32" && values.dtype !== "fp16")) {
    console.error(`usage: make-random-clip.ts --size ${Object.keys(SIZES).join("|")} --out <dir> [--dtype fp32|fp16]`);
    process.exit(2);
  }
  const t0 = Date.now();
  await makeRandomClip(values.out, dims, values.dtype);
  console.error(`wrote ${values.out} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}
