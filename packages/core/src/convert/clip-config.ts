/**
 * HF CLIPModel `config.json`, validated with zod. Defaults are transformers' CLIPTextConfig /
 * CLIPVisionConfig / CLIPConfig defaults, so a config that leaves a field out means what it means to
 * transformers. Legacy `text_config_dict` / `vision_config_dict` (written by transformers ≤ 4.27, as in
 * PickScore_v1) win over `text_config` / `vision_config`: transformers builds the sub-config from the
 * `_dict` form when present (4.27 replaced text_config with it; later versions overwrite every key of
 * text_config with the defaults-filled dict, which comes to the same thing).
 */
import { readFile } from "node:fs/promises";
import { z } from "zod";
import { PickrankError } from "@pickrank/contract";

export const SUPPORTED_ACTIVATIONS = ["gelu", "quick_gelu"] as const;
export type ClipActivation = (typeof SUPPORTED_ACTIVATIONS)[number];

const posInt = z.number().int().positive();
const eps = z.number().positive();

const textSchema = z.object({
  vocab_size: posInt.default(49408),
  hidden_size: posInt.default(512),
  intermediate_size: posInt.default(2048),
  num_hidden_layers: posInt.default(12),
  num_attention_heads: posInt.default(8),
  max_position_embeddings: posInt.default(77),
  hidden_act: z.string().default("quick_gelu"),
  layer_norm_eps: eps.default(1e-5),
  eos_token_id: z.number().int().default(49407),
});

const visionSchema = z.object({
  hidden_size: posInt.default(768),
  intermediate_size: posInt.default(3072),
  num_hidden_layers: posInt.default(12),
  num_attention_heads: posInt.default(12),
  num_channels: posInt.default(3),
  image_size: posInt.default(224),
  patch_size: posInt.default(32),
  hidden_act: z.string().default("quick_gelu"),
  layer_norm_eps: eps.default(1e-5),
});

const subConfig = z.record(z.string(), z.unknown()).nullish();
const topSchema = z.object({
  model_type: z.string().optional(),
  projection_dim: posInt.default(512),
  logit_scale_init_value: z.number().default(2.6592),
  text_config: subConfig,
  text_config_dict: subConfig,
  vision_config: subConfig,
  vision_config_dict: subConfig,
});

export type ClipTextConfig = z.infer<typeof textSchema> & { hidden_act: ClipActivation };
export type ClipVisionConfig = z.infer<typeof visionSchema> & { hidden_act: ClipActivation };
export interface ClipConfig {
  projectionDim: number;
  text: ClipTextConfig;
  vision: ClipVisionConfig;
}

function formatIssues(err: z.ZodError): string {
  return err.issues
    .map((i) => {
      const where = i.path.length ? i.path.join(".") : "(root)";
      return `${where}: ${i.message}`;
    })
    .join("; ");
}

/** Validates a parsed config.json object. `file` names it in errors. */
export function parseClipConfig(raw: unknown, file = "config.json"): ClipConfig {
  const top = topSchema.safeParse(raw);
  if (!top.success) throw new PickrankError("BAD_MODEL", `${file}: ${formatIssues(top.error)}`, { details: { file } });
  const t = top.data;
  if (t.model_type !== undefined && t.model_type !== "clip") {
    throw new PickrankError("BAD_MODEL", `${file}: model_type is ${JSON.stringify(t.model_type)}; expected "clip" (a CLIPModel)`, {
      details: { file },
    });
  }
  const textRaw = t.text_config_dict ?? t.text_config ?? {};
  const visionRaw = t.vision_config_dict ?? t.vision_config ?? {};
  const text = textSchema.safeParse(textRaw);
  if (!text.success) throw new PickrankError("BAD_MODEL", `${file}: text config: ${formatIssues(text.error)}`, { details: { file } });
  const vision = visionSchema.safeParse(visionRaw);
  if (!vision.success) throw new PickrankError("BAD_MODEL", `${file}: vision config: ${formatIssues(vision.error)}`, { details: { file } });

  const problems: string[] = [];
  const act = (where: string, a: string) => {
    if (!(SUPPORTED_ACTIVATIONS as readonly string[]).includes(a)) {
      problems.push(`${where}.hidden_act is ${JSON.stringify(a)}; supported: ${SUPPORTED_ACTIVATIONS.map((s) => `"${s}"`).join(", ")}`);
    }
  };
  act("text_config", text.data.hidden_act);
  act("vision_config", vision.data.hidden_act);
  for (const [where, c] of [
    ["text_config", text.data],
    ["vision_config", vision.data],
  ] as const) {
    if (c.hidden_size % c.num_attention_heads !== 0) {
      problems.push(`${where}.hidden_size ${c.hidden_size} is not divisible by num_attention_heads ${c.num_attention_heads}`);
    }
  }
  if (vision.data.image_size % vision.data.patch_size !== 0) {
    problems.push(`vision_config.image_size ${vision.data.image_size} is not a multiple of patch_size ${vision.data.patch_size}`);
  }
  if (problems.length) {
    throw new PickrankError("BAD_MODEL", `${file}: unsupported CLIP config: ${problems.join("; ")}`, { details: { file, problems } });
  }
  return {
    projectionDim: t.projection_dim,
    text: text.data as ClipTextConfig,
    vision: vision.data as ClipVisionConfig,
  };
}

export async function readClipConfig(file: string): Promise<ClipConfig> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new PickrankError(
      "BAD_MODEL",
      code === "ENOENT"
        ? `${file} not found; expected the Hugging Face CLIPModel config.json beside model.safetensors`
        : `cannot read ${file} (${code ?? String(e)})`,
      { cause: e, details: { file } },
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new PickrankError("BAD_MODEL", `${file} is not valid JSON (${(e as Error).message})`, { cause: e, details: { file } });
  }
  return parseClipConfig(raw, file);
}
