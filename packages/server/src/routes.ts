/**
 * The scoring routes: request bodies (JSON or multipart) → the Engine → responses. Validation is the
 * zod schemas of ./schemas.ts; limits (images per request, bytes) are checked before any work.
 */
import { invalidParameter, PickrankError, toPickrankError } from "@pickrank/contract";
import { resolveScorePrompt, type ImageInput, type ScorePrompt } from "@pickrank/core";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Engine, ScoreJob } from "./engine.ts";
import { zodError } from "./http-errors.ts";
import { partInput, rawDimsFromFields, resolveImageRef, type FilePart } from "./images.ts";
import type { ResolvedOptions } from "./options.ts";
import { RankRequestSchema, ScoreRequestSchema, type ImageRef } from "./schemas.ts";

/** What a handler gets beside the request: when it arrived and the signal that ends its work. */
export interface RequestContext {
  t0: number;
  signal: AbortSignal;
}

export interface RouteDeps {
  engine: Engine;
  options: ResolvedOptions;
  modelId: string;
  context: (req: FastifyRequest) => RequestContext;
}

interface Multipart {
  fields: Map<string, string>;
  files: FilePart[];
}

function tooMany(n: number, max: number, what: string): PickrankError {
  return new PickrankError(
    "PAYLOAD_TOO_LARGE",
    `Expected at most ${max} ${what} in one request (the server's --max-images) but received ${n}`,
    {
      details: { limit: max, received: n },
    },
  );
}

/** Reads a whole multipart body: text fields by name, file parts in order; PAYLOAD_TOO_LARGE past the byte limit. */
async function readMultipart(req: FastifyRequest, maxBodyBytes: number): Promise<Multipart> {
  const fields = new Map<string, string>();
  const files: FilePart[] = [];
  let bytes = 0;
  for await (const part of req.parts()) {
    if (part.type === "field") {
      fields.set(part.fieldname, String(part.value));
      continue;
    }
    const data = await part.toBuffer();
    bytes += data.length;
    if (bytes > maxBodyBytes) {
      throw new PickrankError(
        "PAYLOAD_TOO_LARGE",
        `Expected file parts of at most ${maxBodyBytes} bytes in all (the server's --max-body-bytes)`,
        {
          details: { limit: maxBodyBytes },
        },
      );
    }
    files.push({ field: part.fieldname, filename: part.filename || undefined, mimetype: part.mimetype, data });
  }
  return { fields, files };
}

function requireBody(req: FastifyRequest): unknown {
  if (req.body === undefined || req.body === null || req.body === "") {
    throw new PickrankError("BAD_INPUT", "Expected a JSON body (application/json) or a multipart/form-data body but the request has none");
  }
  return req.body;
}

/** A multipart text field that holds a boolean ("true"/"false", "1"/"0"); absent is false. */
function booleanField(fields: ReadonlyMap<string, string>, name: string): boolean {
  const v = fields.get(name);
  if (v === undefined || v === "false" || v === "0") return false;
  if (v === "true" || v === "1") return true;
  throw invalidParameter(name, '"true" or "false"', v);
}

/** /v1/rank's body → prompt, cleanPrompt, Scorer inputs and the multipart file names (for `file` in the results). */
async function rankInputs(
  req: FastifyRequest,
  o: ResolvedOptions,
): Promise<{ prompt: string; clean: boolean; images: ImageInput[]; names: (string | undefined)[] }> {
  if (req.isMultipart()) {
    const { fields, files } = await readMultipart(req, o.maxBodyBytes);
    const prompt = fields.get("prompt");
    if (!prompt)
      throw new PickrankError("BAD_INPUT", "Expected a text field prompt in the multipart body but there is none", {
        details: { parameter: "prompt" },
      });
    if (files.length === 0)
      throw new PickrankError("BAD_INPUT", "Expected at least one image file part but there is none", { details: { parameter: "images" } });
    const dims = rawDimsFromFields(fields);
    const images = files.map((f, i) => partInput(f, dims, `images[${i}]`, o.maxPixels));
    return { prompt, clean: booleanField(fields, "cleanPrompt"), images, names: files.map((f) => f.filename) };
  }
  const body = requireBody(req) as { images?: unknown };
  if (Array.isArray(body.images) && body.images.length > o.maxImages) throw tooMany(body.images.length, o.maxImages, "images");
  const parsed = RankRequestSchema.safeParse(body);
  if (!parsed.success)
    throw zodError(parsed.error, 'a JSON body {"prompt": string, "images": [base64 image or {raw,width,height,channels}, …]}');
  const images = parsed.data.images.map((ref, i) => resolveImageRef(ref, `images[${i}]`, o.maxPixels));
  return { prompt: parsed.data.prompt, clean: parsed.data.cleanPrompt === true, images, names: [] };
}

/**
 * /v1/score's body → jobs (a bad image reference fails only its item) and cleanPrompt; BAD_INPUT for a
 * group with two prompts (compared as sent).
 */
async function scoreJobs(req: FastifyRequest, o: ResolvedOptions): Promise<{ jobs: ScoreJob[]; clean: boolean }> {
  let body: unknown;
  let parts: Map<string, FilePart> | undefined;
  if (req.isMultipart()) {
    const mp = await readMultipart(req, o.maxBodyBytes);
    parts = new Map(mp.files.map((f) => [f.field, f]));
    const items = mp.fields.get("items");
    if (items === undefined)
      throw new PickrankError("BAD_INPUT", "Expected a text field items (a JSON array) in the multipart body", {
        details: { parameter: "items" },
      });
    try {
      body = { items: JSON.parse(items) as unknown, cleanPrompt: booleanField(mp.fields, "cleanPrompt") };
    } catch (e) {
      throw new PickrankError("BAD_INPUT", `Expected the items field to be a JSON array but it does not parse: ${(e as Error).message}`, {
        cause: e,
      });
    }
  } else {
    body = requireBody(req);
  }
  const items = (body as { items?: unknown }).items;
  if (Array.isArray(items) && items.length > o.maxImages) throw tooMany(items.length, o.maxImages, "items");
  const parsed = ScoreRequestSchema.safeParse(body);
  const shape = 'a JSON body {"items": [{"prompt": string, "image": …, "group"?: string|number}, …]}';
  if (!parsed.success) throw zodError(parsed.error, shape);
  checkGroups(parsed.data.items);
  const jobs = parsed.data.items.map((it, i) => ({
    prompt: it.prompt,
    group: it.group,
    image: resolveOrError(it.image, `items[${i}].image`, o, parts),
  }));
  return { jobs, clean: parsed.data.cleanPrompt === true };
}

function resolveOrError(
  ref: ImageRef,
  field: string,
  o: ResolvedOptions,
  parts: Map<string, FilePart> | undefined,
): ImageInput | PickrankError {
  try {
    return resolveImageRef(ref, field, o.maxPixels, parts);
  } catch (e) {
    return toPickrankError(e, "BAD_IMAGE");
  }
}

/** Scores compare images of one prompt only: a group (one softmax) must hold one prompt. */
function checkGroups(items: readonly { prompt: string; group?: string | number | undefined }[]): void {
  const promptOf = new Map<string, { prompt: string; index: number }>();
  items.forEach((it, index) => {
    if (it.group === undefined) return;
    const key = `${typeof it.group}:${it.group}`;
    const seen = promptOf.get(key);
    if (!seen) promptOf.set(key, { prompt: it.prompt, index });
    else if (seen.prompt !== it.prompt) {
      throw new PickrankError(
        "BAD_INPUT",
        `Expected one prompt per group (scores compare images of the same prompt only) but group ${JSON.stringify(it.group)} ` +
          `has different prompts at items[${seen.index}] and items[${index}]`,
        { details: { parameter: `items[${index}].group`, expected: "one prompt per group" } },
      );
    }
  });
}

/** The work's result, or the signal's reason (TIMEOUT, ABORTED) as soon as it fires. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  work.catch(() => undefined);
  if (signal.aborted) return Promise.reject(toPickrankError(signal.reason, "ABORTED"));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(toPickrankError(signal.reason, "ABORTED"));
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * The text scored for a prompt: core's resolveScorePrompt, the same as `pickrank rank` (the prompt
 * without its syntax when `clean`, else as sent; its warnings, e.g. longer than CLIP's 75 tokens).
 */
function scoredPrompt(engine: Engine, prompt: string, clean: boolean): ScorePrompt {
  return resolveScorePrompt({ prompt, raw: !clean, countTokens: (t) => engine.scorer.countTokens(t), scorePromptOption: null });
}

/** Registers POST /v1/rank and POST /v1/score. */
export function registerScoringRoutes(app: FastifyInstance, deps: RouteDeps): void {
  const { engine, options } = deps;
  app.post("/v1/rank", async (req) => {
    const ctx = deps.context(req);
    const { prompt, clean, images, names } = await rankInputs(req, options);
    const scored = scoredPrompt(engine, prompt, clean);
    const { results, timings } = await untilAborted(engine.rank(scored.text, images, ctx.signal, ctx.t0), ctx.signal);
    return {
      prompt,
      scoredPrompt: scored.text,
      warnings: scored.warnings,
      model: deps.modelId,
      device: engine.scorer.device,
      results: results.map((r) =>
        names[r.index] ? { index: r.index, file: names[r.index], score: r.score, prob: r.prob, rank: r.rank } : r,
      ),
      timings,
    };
  });
  app.post("/v1/score", async (req) => {
    const ctx = deps.context(req);
    const { jobs, clean } = await scoreJobs(req, options);
    // One cleaning per distinct prompt (no token count: /v1/score answers no warnings); the scored text
    // rides on each scored item when asked for.
    const distinct = clean ? [...new Set(jobs.map((j) => j.prompt))] : [];
    const texts = new Map(distinct.map((p) => [p, resolveScorePrompt({ prompt: p }).text] as const));
    const scoredJobs = clean ? jobs.map((j) => ({ ...j, prompt: texts.get(j.prompt) ?? j.prompt })) : jobs;
    const { results, timings } = await untilAborted(engine.score(scoredJobs, ctx.signal, ctx.t0), ctx.signal);
    const out = results.map((r) =>
      "error" in r ? { ...r, error: r.error.toJSON() } : clean ? { ...r, scoredPrompt: scoredJobs[r.index]?.prompt ?? "" } : r,
    );
    return { model: deps.modelId, device: engine.scorer.device, results: out, failed: out.filter((r) => "error" in r).length, timings };
  });
}
