/**
 * The one place bestOf's options are checked: a zod schema whose messages follow the project's
 * "Expected … for <name> but received …" style. `bestOf` runs it on every call; the CLI runs the same
 * schema on the options it built from its flags, before any server call or model load, with
 * `optionNames` mapping API paths to its flags (`minSurvivors` → `--min`), so one rule gives one
 * message in both places.
 */
import { invalidParameter, PickrankError } from "@pickrank/contract";
import { z } from "zod";
import type { BestOfOptions, OptionNames } from "./types.ts";

/** Names an option in messages: the caller's name for it (a CLI flag) or its API path. */
export type Namer = (apiPath: string) => string;

/** The namer for `names` (API path → displayed name); API paths name themselves. */
export function namer(names: OptionNames | undefined): Namer {
  return (p) => names?.[p] ?? p;
}

const POSITIVE_INT = "positive integer";
const THRESHOLD = "number in (-1, 1]";

function posInt(what = POSITIVE_INT) {
  return z.number({ error: what }).int({ error: what }).min(1, { error: what });
}

const nonEmptyString = z.string({ error: "a non-empty string" }).refine((s) => s.trim() !== "", { error: "a non-empty string" });
const plainObject = (what: string) => z.record(z.string(), z.unknown(), { error: what });

const outSchema = z.union(
  [
    nonEmptyString,
    z.object({
      dir: z.string({ error: "a folder path" }).min(1, { error: "a folder path" }),
      keep: z.enum(["top", "all"], { error: '"top" or "all"' }).optional(),
      resume: z.boolean({ error: "true or false" }).optional(),
      fingerprint: plainObject("an object of JSON values").optional(),
    }),
  ],
  { error: "a folder path or { dir, keep?, resume?, fingerprint? }" },
);

/** Every field of BestOfOptions that is plain data (what a CLI can build from flags). */
const settingsShape = {
  prompt: nonEmptyString.optional(),
  prompts: z.array(nonEmptyString, { error: "a non-empty array of strings" }).min(1, { error: "a non-empty array of strings" }).optional(),
  negativePrompt: z.string({ error: "a string" }).optional(),
  n: posInt(),
  top: posInt().optional(),
  seed: z
    .number({ error: "non-negative integer" })
    .int({ error: "non-negative integer" })
    .min(0, { error: "non-negative integer" })
    .optional(),
  minSurvivors: posInt().optional(),
  batchSize: posInt().optional(),
  params: plainObject("an object of generation settings").optional(),
  refine: z
    .object(
      {
        draft: z.object(
          {
            steps: posInt().optional(),
            width: posInt().optional(),
            height: posInt().optional(),
            params: plainObject("an object of generation settings").optional(),
          },
          { error: "an object with steps, width, height or params" },
        ),
        k: posInt().optional(),
      },
      { error: "an object { draft, k? }" },
    )
    .optional(),
  diverse: z
    .union(
      [
        z.boolean(),
        z.object({ threshold: z.number({ error: THRESHOLD }).gt(-1, { error: THRESHOLD }).lte(1, { error: THRESHOLD }).optional() }),
      ],
      {
        error: "true, false or { threshold }",
      },
    )
    .optional(),
  out: outSchema.optional(),
  scorePrompt: z
    .union([nonEmptyString, z.array(nonEmptyString, { error: "an array of non-empty strings" })], {
      error: "a non-empty string, or one per prompt",
    })
    .optional(),
  scoreRawPrompt: z.boolean({ error: "true or false" }).optional(),
};

const runtimeShape = {
  backend: z.custom<BestOfOptions["backend"]>(
    (v) =>
      typeof (v as { generate?: unknown } | undefined)?.generate === "function" &&
      typeof (v as { fingerprint?: unknown }).fingerprint === "function",
    { error: "a Backend (with generate() and fingerprint())" },
  ),
  scorer: z.custom<BestOfOptions["scorer"]>(
    (v) =>
      ["embedText", "embedImages", "scoreEmbeddings"].every((m) => typeof (v as Record<string, unknown> | undefined)?.[m] === "function"),
    { error: "a Scorer (with embedText, embedImages, scoreEmbeddings)" },
  ),
  signal: z.custom<AbortSignal>((v) => v instanceof AbortSignal, { error: "an AbortSignal" }).optional(),
  onEvent: z.custom<(e: unknown) => void>((v) => typeof v === "function", { error: "a function" }).optional(),
  optionNames: z.record(z.string(), z.string(), { error: "an object of strings" }).optional(),
};

type Settings = z.infer<z.ZodObject<typeof settingsShape>>;
type Ctx = z.RefinementCtx;

/** A BAD_INPUT issue at `path`: "Expected <expected> for <name> but received <input>". */
function issue(ctx: Ctx, path: string, expected: string, input: unknown): void {
  ctx.addIssue({ code: "custom", path: path.split("."), message: expected, input });
}

/** Checks that relate two options (top ≤ n, refine.k between top and n, prompt xor prompts). */
function crossChecks(o: Settings & { backend?: { maxSeed?: unknown } }, ctx: Ctx, nm: Namer): void {
  if ((o.prompt === undefined) === (o.prompts === undefined)) {
    const got = o.prompt === undefined ? "neither" : "both";
    ctx.addIssue({
      code: "custom",
      path: ["prompt"],
      message: `Expected exactly one of ${nm("prompt")} or ${nm("prompts")} but received ${got}`,
      params: { whole: true },
    });
  }
  const upToN = `integer between 1 and ${nm("n")} (${o.n})`;
  if (o.top !== undefined && o.top > o.n) issue(ctx, "top", upToN, o.top);
  if (o.minSurvivors !== undefined && o.minSurvivors > o.n) issue(ctx, "minSurvivors", upToN, o.minSurvivors);
  if (o.refine) {
    const d = o.refine.draft;
    if (
      d.steps === undefined &&
      d.width === undefined &&
      d.height === undefined &&
      (d.params === undefined || Object.keys(d.params).length === 0)
    ) {
      const settings = [...new Set(["refine.draft.steps", "refine.draft.width", "refine.draft.height", "refine.draft.params"].map(nm))];
      const list = settings.length > 1 ? `${settings.slice(0, -1).join(", ")} or ${settings[settings.length - 1]}` : settings[0];
      ctx.addIssue({
        code: "custom",
        path: ["refine", "draft"],
        message: `Expected at least one cheaper setting (${list}) with ${nm("refine")} but received none`,
        params: { whole: true },
      });
    }
    const top = o.top ?? 1;
    const k = o.refine.k;
    if (k !== undefined && (k > o.n || k < top)) issue(ctx, "refine.k", `integer between ${nm("top")} (${top}) and ${nm("n")} (${o.n})`, k);
  }
  scorePromptChecks(o, ctx, nm);
  const maxSeed = o.backend?.maxSeed;
  if (o.seed !== undefined && typeof maxSeed === "number" && o.seed + o.n - 1 > maxSeed) {
    const expected = `integer between 0 and ${maxSeed - o.n + 1} (the backend's largest seed, ${maxSeed}, minus ${nm("n")} − 1)`;
    issue(ctx, "seed", expected, o.seed);
  } else if (o.seed !== undefined && o.seed + o.n - 1 > Number.MAX_SAFE_INTEGER) {
    issue(ctx, "seed", "non-negative integer", o.seed);
  }
}

/** The scoring prompt (score-prompt.ts): a text or the raw prompt, not both; one text per prompt. */
function scorePromptChecks(o: Settings, ctx: Ctx, nm: Namer): void {
  const sp = o.scorePrompt;
  if (sp === undefined) return;
  if (o.scoreRawPrompt) {
    const message = `Expected either ${nm("scorePrompt")} or ${nm("scoreRawPrompt")} but received both`;
    ctx.addIssue({ code: "custom", path: ["scorePrompt"], message, params: { whole: true } });
  } else if (Array.isArray(sp) && sp.length !== (o.prompts?.length ?? 1)) {
    issue(ctx, "scorePrompt", `an array of ${o.prompts?.length ?? 1} scoring prompts (one per prompt)`, sp);
  } else if (!Array.isArray(sp) && o.prompts !== undefined) {
    const message =
      `Expected ${nm("scorePrompt")} only with ${nm("prompt")} (one scoring text for one prompt; ` +
      `with ${nm("prompts")} the API takes one per prompt) but received ${nm("prompts")}`;
    ctx.addIssue({ code: "custom", path: ["scorePrompt"], message, params: { whole: true } });
  }
}

function pathName(path: readonly PropertyKey[], nm: Namer): string {
  // The longest API path with a name of its own: "prompts[2]" stays, "out.dir" names "out" when only it is mapped.
  const flat = path.map((p, i) => (typeof p === "number" ? `[${p}]` : `${i > 0 ? "." : ""}${String(p)}`)).join("");
  const dotted = path.filter((p) => typeof p !== "number").map(String);
  for (let n = dotted.length; n > 0; n--) {
    const key = dotted.slice(0, n).join(".");
    if (nm(key) !== key) return nm(key);
  }
  return flat;
}

/**
 * The issue to report: for a union (a folder path or an object …), the branch that got past the type
 * check says more ("out.keep") than the union's own "expected one of" message.
 */
function reportable(first: z.core.$ZodIssue): z.core.$ZodIssue {
  if (first.code !== "invalid_union") return first;
  for (const branch of first.errors) {
    const inner = branch[0];
    if (inner && inner.path.length > 0) return reportable({ ...inner, path: [...first.path, ...inner.path] });
  }
  return first;
}

function toError(issues: readonly z.core.$ZodIssue[], nm: Namer): PickrankError<"BAD_INPUT"> {
  const first = reportable(issues[0]!);
  const name = pathName(first.path, nm);
  const whole = (first as { params?: { whole?: boolean } }).params?.whole === true;
  if (whole) return new PickrankError("BAD_INPUT", first.message, { details: { parameter: name } });
  return invalidParameter(name, first.message, (first as { input?: unknown }).input);
}

/**
 * Checks the data options of bestOf (everything but backend, scorer, signal and onEvent); the
 * backend's maxSeed bounds the seed when `backend` is given.
 * @throws BAD_INPUT naming the option as `optionNames` calls it, e.g.
 *   "Expected integer between 1 and -n (4) for --top but received 5 of type number".
 */
export function checkSettings(opts: unknown, optionNames?: OptionNames): void {
  const nm = namer(optionNames);
  if (!opts || typeof opts !== "object") throw invalidParameter("options", "an object", opts);
  const schema = z
    .object(settingsShape)
    .superRefine((o, ctx) => crossChecks({ ...o, backend: (opts as { backend?: { maxSeed?: unknown } }).backend }, ctx, nm));
  const r = schema.safeParse(opts, { reportInput: true });
  if (!r.success) throw toError(r.error.issues, nm);
}

/**
 * Checks every option of bestOf: the data (checkSettings) and the runtime objects (a Backend with
 * generate() and fingerprint(), a Scorer with embedText / embedImages / scoreEmbeddings).
 * @throws BAD_INPUT (see checkSettings).
 */
export function checkBestOfOptions(opts: unknown): asserts opts is BestOfOptions {
  if (!opts || typeof opts !== "object") throw invalidParameter("options", "an object", opts);
  const names = (opts as { optionNames?: OptionNames }).optionNames;
  const nm = namer(typeof names === "object" && names !== null ? names : undefined);
  const r = z.object(runtimeShape).safeParse(opts, { reportInput: true });
  if (!r.success) throw toError(r.error.issues, nm);
  checkSettings(opts, names);
}
