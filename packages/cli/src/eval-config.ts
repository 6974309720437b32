/**
 * Named configurations of `pickrank eval run`: from a JSON file (`--configs file.json`) and/or repeated
 * `--config name=…,backend=…,url=…,…` flags, checked with one zod schema whose messages name the
 * configuration and the field. What an evaluator compares: backend kind and servers, ComfyUI workflow,
 * checkpoint, sampling parameters, negative prompt. Credentials come from `authFile` (or PICKRANK_AUTH)
 * and never reach the summary.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { PickrankError, fsError, type GenerationParams } from "@pickrank/contract";
import { z } from "zod";

/** A configuration as checked from the file or flags (paths already resolved). */
export interface EvalConfigSpec {
  name: string;
  backend: string;
  urls: string[];
  /** ComfyUI workflow file (API format), absolute. */
  workflow?: string;
  params: GenerationParams;
  negativePrompt?: string;
  /** File whose first line holds the credentials (user:password or an Authorization value). */
  authFile?: string;
  /** ComfyUI: seconds without progress before BACKEND_STALLED. */
  stallTimeout?: number;
  /** Prompts rendering at once (default 2 per server). */
  concurrency?: number;
}

const positiveInt = z.number().int().positive();
const ParamsSchema = z
  .object({
    steps: positiveInt.optional(),
    cfgScale: z.number().positive().optional(),
    width: positiveInt.optional(),
    height: positiveInt.optional(),
    sampler: z.string().min(1).optional(),
    scheduler: z.string().min(1).optional(),
    checkpoint: z.string().min(1).optional(),
    batchSize: positiveInt.optional(),
    extra: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

const ConfigSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9][\w.-]*$/, "a name of letters, digits, _ . - (it names folders and rows)"),
    backend: z.string().min(1).default("comfyui"),
    url: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
    workflow: z.string().min(1).optional(),
    checkpoint: z.string().min(1).optional(),
    params: ParamsSchema.default({}),
    negativePrompt: z.string().optional(),
    authFile: z.string().min(1).optional(),
    stallTimeout: z.number().positive().optional(),
    concurrency: positiveInt.optional(),
  })
  .strict();

// Chosen by shape, not z.union: a union's error would hide which configuration and field is wrong.
const ListSchema = z.array(ConfigSchema);
const WrappedSchema = z.object({ configs: ListSchema }).strict();

/** Default server URL per backend kind. */
export const EVAL_DEFAULT_URLS: Record<string, string> = { comfyui: "http://127.0.0.1:8188", a1111: "http://127.0.0.1:7860" };

function issueMessage(e: z.ZodError, where: string, names?: readonly string[]): PickrankError {
  const issue = e.issues[0]!;
  const [i, ...rest] = issue.path[0] === "configs" ? issue.path.slice(1) : issue.path;
  const who = typeof i === "number" && names?.[i] ? `configuration ${names[i]}` : typeof i === "number" ? `configuration ${i + 1}` : "";
  const field = (typeof i === "number" ? rest : issue.path).join(".");
  return new PickrankError("BAD_INPUT", `Expected ${field || "a configuration"} ${who ? `of ${who} ` : ""}in ${where}: ${issue.message}`, {
    details: { parameter: where, ...(field ? { field } : {}) },
  });
}

function toSpec(c: z.infer<typeof ConfigSchema>, base: string): EvalConfigSpec {
  const params: GenerationParams = { ...c.params, ...(c.checkpoint !== undefined ? { checkpoint: c.checkpoint } : {}) };
  const urls = c.url === undefined ? [EVAL_DEFAULT_URLS[c.backend]].filter((u): u is string => u !== undefined) : [c.url].flat();
  if (c.workflow !== undefined && c.backend !== "comfyui")
    throw new PickrankError(
      "BAD_INPUT",
      `Expected workflow only with backend comfyui but configuration ${c.name} has backend ${c.backend}`,
    );
  return {
    name: c.name,
    backend: c.backend,
    urls,
    params,
    ...(c.workflow !== undefined ? { workflow: path.resolve(base, c.workflow) } : {}),
    ...(c.negativePrompt !== undefined ? { negativePrompt: c.negativePrompt } : {}),
    ...(c.authFile !== undefined ? { authFile: path.resolve(base, c.authFile) } : {}),
    ...(c.stallTimeout !== undefined ? { stallTimeout: c.stallTimeout } : {}),
    ...(c.concurrency !== undefined ? { concurrency: c.concurrency } : {}),
  };
}

/**
 * Reads `--configs <file>`: a JSON array of configurations or `{"configs": [...]}`; relative paths
 * (workflow, authFile) are relative to the file. The backend kind and URLs are checked by loadConfigs.
 * @throws NOT_FOUND for a missing file; BAD_INPUT naming the configuration and field that is wrong.
 */
export async function readConfigFile(file: string): Promise<EvalConfigSpec[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw fsError(e, { action: "read the configurations", path: file, option: "--configs" });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new PickrankError("BAD_INPUT", `Expected JSON in ${file} (--configs) but it does not parse: ${(e as Error).message}`, {
      details: { parameter: "--configs" },
    });
  }
  const list = Array.isArray(json) ? json : (json as { configs?: unknown[] } | null)?.configs;
  const names = Array.isArray(list) ? list.map((c) => String((c as { name?: unknown } | null)?.name ?? "")) : undefined;
  const r = Array.isArray(json) ? ListSchema.safeParse(json) : WrappedSchema.safeParse(json);
  if (!r.success) throw issueMessage(r.error, `--configs ${file}`, names);
  const configs = Array.isArray(r.data) ? r.data : r.data.configs;
  return configs.map((c) => toSpec(c, path.dirname(path.resolve(file))));
}

/** `--config` keys → the configuration field they set ("cfg" → params.cfgScale …). */
const FLAG_KEYS: Record<string, { field: string; kind: "string" | "number" | "int" | "list" }> = {
  name: { field: "name", kind: "string" },
  backend: { field: "backend", kind: "string" },
  url: { field: "url", kind: "list" },
  workflow: { field: "workflow", kind: "string" },
  checkpoint: { field: "checkpoint", kind: "string" },
  steps: { field: "params.steps", kind: "int" },
  cfg: { field: "params.cfgScale", kind: "number" },
  width: { field: "params.width", kind: "int" },
  height: { field: "params.height", kind: "int" },
  sampler: { field: "params.sampler", kind: "string" },
  scheduler: { field: "params.scheduler", kind: "string" },
  "batch-size": { field: "params.batchSize", kind: "int" },
  negative: { field: "negativePrompt", kind: "string" },
  "auth-file": { field: "authFile", kind: "string" },
  "stall-timeout": { field: "stallTimeout", kind: "number" },
  concurrency: { field: "concurrency", kind: "int" },
};

/**
 * Parses one `--config` value: comma-separated key=value pairs (keys: FLAG_KEYS; `url` may repeat for a
 * pool); values may not contain commas — use --configs for those. Relative paths are the caller's (cwd).
 * The backend kind and the URLs (empty for a kind without a default URL) are checked by loadConfigs.
 * @throws BAD_INPUT naming the key that is unknown, missing a value, or not a number.
 */
export function parseConfigFlag(value: string): EvalConfigSpec {
  const obj: Record<string, unknown> = { params: {} };
  for (const part of value.split(",")) {
    const eq = part.indexOf("=");
    const key = (eq < 0 ? part : part.slice(0, eq)).trim();
    const raw = eq < 0 ? "" : part.slice(eq + 1).trim();
    const spec = FLAG_KEYS[key];
    if (!spec)
      throw new PickrankError(
        "BAD_INPUT",
        `Expected --config keys from ${Object.keys(FLAG_KEYS).join(", ")} but received ${JSON.stringify(key)}`,
        {
          details: { parameter: "--config" },
        },
      );
    if (raw === "")
      throw new PickrankError("BAD_INPUT", `Expected a value for ${key}= in --config ${JSON.stringify(value)}`, {
        details: { parameter: "--config" },
      });
    const num = Number(raw);
    if ((spec.kind === "number" || spec.kind === "int") && !Number.isFinite(num))
      throw new PickrankError("BAD_INPUT", `Expected a number for ${key}= in --config but received ${JSON.stringify(raw)}`, {
        details: { parameter: "--config" },
      });
    const v = spec.kind === "number" || spec.kind === "int" ? num : raw;
    const [a, b] = spec.field.split(".");
    if (b !== undefined) (obj[a!] as Record<string, unknown>)[b] = v;
    else if (spec.kind === "list") obj[a!] = [...((obj[a!] as string[] | undefined) ?? []), raw];
    else obj[a!] = v;
  }
  const r = ConfigSchema.safeParse(obj);
  if (!r.success) throw issueMessage(r.error, `--config ${JSON.stringify(value)}`);
  return toSpec(r.data, process.cwd());
}

/**
 * The backend kinds a configuration may name: the registered ones (builtins and plugins) except "pool",
 * which a configuration gets by listing several URLs.
 */
async function configBackends(): Promise<string[]> {
  const { backendKinds } = await import("@pickrank/adapters");
  return backendKinds().filter((k) => k !== "pool");
}

/**
 * The configurations of a run: the file's, then the flags'. At least one; names unique; each backend a
 * registered kind (not "pool": several URLs make a pool).
 * @throws BAD_INPUT when none is given, two share a name, a backend is unknown (naming the
 *   configuration, the `backend` key and the kinds a configuration may use) or has no default URL and none is given.
 */
export async function loadConfigs(file: string | undefined, flags: readonly string[]): Promise<EvalConfigSpec[]> {
  const all = [...(file !== undefined ? await readConfigFile(file) : []), ...flags.map(parseConfigFlag)];
  if (all.length === 0)
    throw new PickrankError(
      "BAD_INPUT",
      "Expected at least one configuration (--config name=…,backend=…,url=… or --configs <file.json>) but received none",
      {
        details: { parameter: "--config" },
      },
    );
  const kinds = await configBackends();
  const seen = new Set<string>();
  for (const c of all) {
    if (!kinds.includes(c.backend))
      throw new PickrankError(
        "BAD_INPUT",
        `Expected backend of configuration ${c.name} to be one of ${kinds.map((k) => JSON.stringify(k)).join(", ")} ` +
          `but received ${JSON.stringify(c.backend)}`,
        { details: { parameter: "--config", field: "backend", known: kinds } },
      );
    if (c.urls.length === 0)
      throw new PickrankError("BAD_INPUT", `Expected url for configuration ${c.name} (no default URL for backend ${c.backend})`, {
        details: { parameter: "--config", field: "url" },
      });
    if (seen.has(c.name))
      throw new PickrankError("BAD_INPUT", `Expected unique configuration names but ${c.name} appears twice`, {
        details: { parameter: "--config" },
      });
    seen.add(c.name);
  }
  return all;
}

/** What the summary and the resume check keep of a configuration: no credentials, the workflow by path. */
export function describeConfig(c: EvalConfigSpec, fingerprint: Record<string, unknown>): Record<string, unknown> {
  return {
    name: c.name,
    backend: c.backend,
    servers: c.urls.length,
    params: c.params,
    ...(c.negativePrompt !== undefined ? { negativePrompt: c.negativePrompt } : {}),
    ...(c.workflow !== undefined ? { workflow: c.workflow } : {}),
    fingerprint,
  };
}
