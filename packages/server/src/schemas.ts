/**
 * Request and response shapes of `pickrank serve`, in zod 4. The same schemas validate requests and
 * generate the OpenAPI 3.1 document (./openapi.ts), so the document cannot drift from the code.
 */
import { ERROR_CODES } from "@pickrank/contract";
import { z } from "zod";

/** An encoded image (PNG, JPEG, WebP, …) as base64, or a `data:image/…;base64,` URL. */
export const EncodedImageSchema = z
  .string()
  .min(1)
  .meta({ id: "EncodedImage", description: "PNG, JPEG or WebP bytes as base64 (a data: URL is accepted too)", contentEncoding: "base64" });

/** Raw interleaved 8-bit pixels: what the ComfyUI and A1111 plugins send, with no PNG encoding. */
export const RawImageSchema = z
  .object({
    raw: z.string().min(1).meta({ description: "width × height × channels bytes, row-major, interleaved, as base64" }),
    width: z.number().int().positive(),
    height: z.number().int().positive(),
    channels: z
      .union([z.literal(3), z.literal(4)])
      .default(3)
      .meta({ description: "3: RGB, 4: RGBA (alpha is dropped, as PickScore does)" }),
  })
  .strict()
  .meta({ id: "RawImage", description: "Raw 8-bit RGB or RGBA pixels" });

/** A multipart file part named by its field name (multipart requests to /v1/score only). */
export const PartImageSchema = z
  .object({
    part: z.string().min(1).meta({ description: "the field name of a file part of this multipart request" }),
    width: z.number().int().positive().optional(),
    height: z.number().int().positive().optional(),
    channels: z.union([z.literal(3), z.literal(4)]).optional(),
  })
  .strict()
  .meta({
    id: "PartImage",
    description: "A file part of the same multipart request; width/height/channels when the part holds raw pixels",
  });

/**
 * An image in a request: base64-encoded bytes (or a data: URL), raw 8-bit RGB/RGBA pixels
 * ({raw, width, height, channels}), or a multipart file part by field name (/v1/score multipart only).
 */
export const ImageRefSchema = z.union([EncodedImageSchema, RawImageSchema, PartImageSchema]).meta({ id: "Image" });
/** An image reference of a request body (see ImageRefSchema). */
export type ImageRef = z.infer<typeof ImageRefSchema>;

const PromptSchema = z.string().min(1).max(10_000).meta({ description: "the prompt the image(s) were generated for" });

/** `cleanPrompt`: score the prompt without its A1111 / ComfyUI syntax (core's scoringPrompt), as `pickrank rank` does by default. */
const CleanPromptSchema = z
  .boolean()
  .optional()
  .meta({
    description:
      "true: score the prompt with its A1111 / ComfyUI syntax removed ((word:1.2), <lora:…>, BREAK …), as `pickrank rank` " +
      "does by default; false or absent: score it exactly as sent",
  });

/**
 * Body of POST /v1/rank: one prompt (1 to 10,000 characters) and at least one image. Unknown fields are
 * refused; a body that does not parse is BAD_INPUT (400).
 */
export const RankRequestSchema = z
  .object({
    prompt: PromptSchema,
    images: z.array(ImageRefSchema).min(1),
    cleanPrompt: CleanPromptSchema,
  })
  .strict()
  .meta({ id: "RankRequest" });
/** A parsed POST /v1/rank body (see RankRequestSchema). */
export type RankRequest = z.infer<typeof RankRequestSchema>;

export const GroupSchema = z.union([z.string().min(1), z.number().int()]).meta({
  description: "items with the same group share one softmax (prob, rank); a group holds one prompt",
});

export const ScoreItemSchema = z
  .object({
    prompt: PromptSchema,
    image: ImageRefSchema,
    group: GroupSchema.optional(),
  })
  .strict()
  .meta({ id: "ScoreItem" });

/**
 * Body of POST /v1/score: at least one item, each a prompt, an image and an optional group (items of
 * one group share a softmax and must share one prompt, else BAD_INPUT).
 */
export const ScoreRequestSchema = z
  .object({ items: z.array(ScoreItemSchema).min(1), cleanPrompt: CleanPromptSchema })
  .strict()
  .meta({ id: "ScoreRequest" });
/** A parsed POST /v1/score body (see ScoreRequestSchema). */
export type ScoreRequest = z.infer<typeof ScoreRequestSchema>;

export const ErrorCodeSchema = z.enum(ERROR_CODES as [string, ...string[]]);

export const ErrorBodySchema = z
  .object({
    code: ErrorCodeSchema,
    message: z.string(),
    details: z.record(z.string(), z.unknown()).optional(),
  })
  .meta({ id: "ErrorBody" });

/**
 * Body of every error answer: `{error: {code, message, details?}}`, the code one of ERROR_TABLE's,
 * the HTTP status the code's.
 */
export const ErrorResponseSchema = z.object({ error: ErrorBodySchema }).meta({ id: "ErrorResponse" });

export const TimingsSchema = z
  .object({
    preprocessMs: z.number().meta({ description: "decoding, resizing and normalizing this request's images" }),
    queuedMs: z.number().meta({ description: "waiting for a vision run (other requests' images, the batching window)" }),
    inferenceMs: z.number().meta({ description: "the vision runs that carried this request's images" }),
    totalMs: z.number().meta({ description: "from the request's arrival to its answer" }),
    batches: z.number().int().meta({ description: "vision runs that carried this request's images" }),
  })
  .meta({ id: "Timings" });

export const RankedSchema = z
  .object({
    index: z.number().int().meta({ description: "position of the image in the request" }),
    file: z.string().optional().meta({ description: "the file name of a multipart part, when it had one" }),
    score: z.number().meta({ description: "PickScore: exp(logit_scale) · cos(text, image)" }),
    prob: z.number().meta({ description: "softmax of the scores over this request's images" }),
    rank: z.number().int().meta({ description: "1 = best" }),
  })
  .meta({ id: "Ranked" });

/**
 * Answer of POST /v1/rank: every image's PickScore, softmax prob and 1-based rank, best first, with
 * the model, the device and the request's timings (ms).
 */
export const RankResponseSchema = z
  .object({
    prompt: z.string(),
    scoredPrompt: z.string().meta({ description: "the text PickScore compared the images with (see cleanPrompt)" }),
    warnings: z.array(z.string()).meta({ description: "e.g. a scored text longer than the 75 tokens CLIP reads" }),
    model: z.string(),
    device: z.string(),
    results: z.array(RankedSchema).meta({ description: "best first" }),
    timings: TimingsSchema,
  })
  .meta({ id: "RankResponse" });

export const ScoreResultSchema = z
  .union([
    z.object({
      index: z.number().int(),
      score: z.number(),
      group: GroupSchema.optional(),
      prob: z.number().optional().meta({ description: "softmax within the item's group (grouped items only)" }),
      rank: z.number().int().optional().meta({ description: "1 = best within the item's group (grouped items only)" }),
      scoredPrompt: z.string().optional().meta({ description: "the text scored, when the request set cleanPrompt" }),
    }),
    z.object({ index: z.number().int(), group: GroupSchema.optional(), error: ErrorBodySchema }),
  ])
  .meta({ id: "ScoreResult" });

/**
 * Answer of POST /v1/score: one result per item in request order (a score, with prob and rank when
 * grouped, or the item's error), the number of failed items, and the request's timings (ms).
 */
export const ScoreResponseSchema = z
  .object({
    model: z.string(),
    device: z.string(),
    results: z.array(ScoreResultSchema).meta({ description: "in request order; a failed item carries error instead of score" }),
    failed: z.number().int(),
    timings: TimingsSchema,
  })
  .meta({ id: "ScoreResponse" });

export const ModelInfoSchema = z
  .object({
    id: z.string(),
    dir: z.string(),
    dtype: z.enum(["fp32", "fp16", "int8"]),
    repo: z.string().optional(),
    revision: z.string().optional(),
    projectionDim: z.number().int(),
    imageSize: z.number().int(),
    device: z.string(),
  })
  .meta({ id: "ModelInfo" });

/**
 * Answer of GET /v1/health: "ok" or "draining", the model and device, the queue (requests admitted,
 * images waiting, the admission limit) and the uptime in seconds.
 */
export const HealthResponseSchema = z
  .object({
    status: z.enum(["ok", "draining"]),
    model: z.string(),
    device: z.string(),
    queue: z.object({
      requests: z.number().int().meta({ description: "requests admitted and not yet answered" }),
      images: z.number().int().meta({ description: "preprocessed images waiting for a vision run" }),
      maxRequests: z.number().int(),
    }),
    uptimeS: z.number(),
  })
  .meta({ id: "HealthResponse" });

/**
 * Answer of GET /v1/models: the served model's id, folder, dtype, source repo and revision, projection
 * (embedding) dimension, image size in pixels and device.
 */
export const ModelsResponseSchema = z.object({ models: z.array(ModelInfoSchema) }).meta({ id: "ModelsResponse" });
