/**
 * Reading A1111's txt2img answer: `{ images: base64[], parameters, info }` where `info` is a JSON
 * string (modules/processing.py Processed.js()) holding the seeds, prompts, infotexts and settings.
 */
import { z } from "zod";
import type { RenderSettings } from "@pickrank/contract";
import { preview, protocolError } from "../http.ts";

export const txt2imgResponse = z.object({ images: z.array(z.string()), info: z.string(), parameters: z.unknown().optional() }).loose();

const infoSchema = z
  .object({
    all_seeds: z.array(z.number()).optional(),
    seed: z.number().optional(),
    index_of_first_image: z.number().int().nonnegative().optional(),
    infotexts: z.array(z.string()).optional(),
    negative_prompt: z.string().nullable().optional(),
    all_negative_prompts: z.array(z.string()).optional(),
    sd_model_name: z.string().nullable().optional(),
    sd_model_hash: z.string().nullable().optional(),
    sd_vae_name: z.string().nullable().optional(),
    steps: z.number().optional(),
    cfg_scale: z.number().optional(),
    sampler_name: z.string().nullable().optional(),
    scheduler: z.string().nullable().optional(),
    width: z.number().optional(),
    height: z.number().optional(),
    clip_skip: z.number().nullable().optional(),
    denoising_strength: z.number().nullable().optional(),
    extra_generation_params: z.record(z.string(), z.unknown()).nullable().optional(),
  })
  .loose();
export type A1111Info = z.infer<typeof infoSchema>;

/** Parses the `info` JSON string; BACKEND_PROTOCOL naming the route when it is not the expected JSON. */
export function parseInfo(who: string, route: string, text: string): A1111Info {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw protocolError(
      who,
      route,
      `an info field that is not JSON (${preview(text)})`,
      "a JSON string with all_seeds and index_of_first_image",
      e,
    );
  }
  const r = infoSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw protocolError(
      who,
      route,
      `an info field where ${issue?.path.join(".") || "the value"} does not fit (${issue?.message ?? "invalid"})`,
      "a JSON object with all_seeds and index_of_first_image",
    );
  }
  return r.data;
}

/**
 * The infotext of image k (0 = the first image after the grid): A1111 puts the grid's infotext
 * first too, so it is `infotexts[index_of_first_image + k]`.
 */
export function infotextOf(info: A1111Info, k: number): string | undefined {
  return info.infotexts?.[(info.index_of_first_image ?? 0) + k];
}

/**
 * The settings of image k as the server reports them: checkpoint (sd_model_name; its hash as
 * other["Model hash"]), steps, cfg_scale, sampler_name, scheduler (or extra_generation_params'
 * "Schedule type"), width, height, negative prompt (all_negative_prompts[k]); others by their infotext names.
 */
export function settingsFromInfo(info: A1111Info, k: number): RenderSettings {
  const s: RenderSettings = {};
  const other: Record<string, string | number> = {};
  const extra = info.extra_generation_params ?? {};
  if (info.sd_model_name) s.checkpoint = info.sd_model_name;
  if (info.steps !== undefined) s.steps = info.steps;
  if (info.cfg_scale !== undefined) s.cfgScale = info.cfg_scale;
  if (info.sampler_name) s.sampler = info.sampler_name;
  const scheduler = info.scheduler ?? (typeof extra["Schedule type"] === "string" ? extra["Schedule type"] : undefined);
  if (scheduler) s.scheduler = scheduler;
  if (info.width !== undefined) s.width = info.width;
  if (info.height !== undefined) s.height = info.height;
  const negative = info.all_negative_prompts?.[k] ?? info.negative_prompt ?? undefined;
  if (negative !== undefined && negative !== null) s.negativePrompt = negative;
  if (info.sd_model_hash) other["Model hash"] = info.sd_model_hash;
  if (info.sd_vae_name) other.VAE = info.sd_vae_name;
  if (typeof info.clip_skip === "number") other["Clip skip"] = info.clip_skip;
  if (typeof info.denoising_strength === "number") other["Denoising strength"] = info.denoising_strength;
  for (const [name, v] of Object.entries(extra))
    if (name !== "Schedule type" && (typeof v === "string" || typeof v === "number")) other[name] = v;
  if (Object.keys(other).length > 0) s.other = other;
  return s;
}
