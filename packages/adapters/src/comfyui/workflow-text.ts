/**
 * Prompt-text tracing: from a sampler's positive (or negative) conditioning back to the nodes that make
 * it from text ("encoders": CLIPTextEncode and kin, or loaders that hold the prompt as an input), and from
 * their text inputs through links to the literal strings a prompt can be written into.
 */
import { typeIs, type InputRef, type WorkflowGraph } from "./workflow-graph.ts";
import { dedupe } from "./workflow-nodes.ts";

export type Polarity = "positive" | "negative";

/** A node that turns text into conditioning, with the literal inputs that hold its text. */
export interface Encoder {
  node: string;
  refs: InputRef[];
}

/** ComfyUI's own encoders and their text inputs (used when the server's /object_info is not at hand). */
const TEXT_INPUTS: Record<string, string[]> = {
  CLIPTextEncode: ["text"],
  CLIPTextEncodeSDXL: ["text_g", "text_l"],
  CLIPTextEncodeSDXLRefiner: ["text"],
  CLIPTextEncodeFlux: ["clip_l", "t5xxl"],
  CLIPTextEncodeSD3: ["clip_l", "clip_g", "t5xxl"],
  CLIPTextEncodeHunyuanDiT: ["bert", "mt5xl"],
  TextEncodeQwenImageEdit: ["prompt"],
  TextEncodeQwenImageEditPlus: ["prompt"],
  TextEncodeHunyuanVideo_ImageToVideo: ["prompt"],
};
/** Class names of text encoders from custom packs (BNK_CLIPTextEncodeAdvanced, smZ CLIPTextEncode, ImpactWildcardEncode …). */
const ENCODER_CLASS = /TextEncode|Encode.?(Text|Prompt)|Prompt.?Encode|WildcardEncode/i;
/** Input names that hold prompt text on an encoder whose class /object_info does not describe. */
const ENCODER_TEXT_NAME = /text|prompt|^clip_[a-z]$|^t5xxl$|^mt5xl$|^bert$|caption/i;
/** Input names that hold text on string nodes (primitives, string functions, stylers, concatenations). */
const STRING_NAME = /text|prompt|string|value|positive|negative|^clip_[a-z]$|^t5xxl$|caption|wildcard|^str/i;
/** Generic conditioning inputs of combine, area, mask and guidance nodes. */
const CONDITIONING_NAME = /^(conditioning(_\d+|_to|_from)?|cond\d*|cond_\d+)$/;

const POSITIVE_AT_SAMPLER = ["positive", "conditioning", "positive_conditioning", "cond"];
const NEGATIVE_AT_SAMPLER = ["negative", "neg_conditioning", "negative_conditioning", "uncond"];

function opposite(p: Polarity): Polarity {
  return p === "positive" ? "negative" : "positive";
}

/** Whether an input holds or carries text: STRING in /object_info, else a literal string or a link, by name. */
function isTextInput(g: WorkflowGraph, id: string, input: string, names: RegExp): boolean {
  const spec = g.inputSpec(id, input);
  if (spec !== undefined) return typeIs(spec.type, "STRING");
  if (g.classInfo(id) !== undefined) return false; // described by the server, and not among its inputs: hidden or stale
  const v = g.inputs(id)[input];
  return names.test(input) && (typeof v === "string" || g.source(v) !== undefined);
}

/** The text inputs of an encoder: its STRING inputs (the dynamic-prompt ones when it marks them), else by name. */
export function encoderTextInputs(g: WorkflowGraph, id: string): string[] {
  if (g.classInfo(id) !== undefined) {
    const strings = g.inputNames(id).filter((n) => typeIs(g.inputSpec(id, n)?.type, "STRING"));
    const dynamic = strings.filter((n) => g.inputSpec(id, n)?.opts.dynamicPrompts === true);
    return dynamic.length > 0 ? dynamic : strings;
  }
  const known = TEXT_INPUTS[g.classType(id)];
  if (known !== undefined) return known.filter((n) => Object.hasOwn(g.inputs(id), n));
  return g.inputNames(id).filter((n) => isTextInput(g, id, n, ENCODER_TEXT_NAME));
}

/** Whether a node makes conditioning from text (an endpoint of the conditioning walk). */
export function isEncoder(g: WorkflowGraph, id: string): boolean {
  if (g.classInfo(id) !== undefined) {
    const makesConditioning = (g.classInfo(id)?.output ?? []).some((t) => typeof t === "string" && typeIs(t, "CONDITIONING"));
    return makesConditioning && encoderTextInputs(g, id).length > 0;
  }
  return g.classType(id) in TEXT_INPUTS || ENCODER_CLASS.test(g.classType(id));
}

/** Whether the node behind a link hands on text (a string node), not conditioning. */
function isStringSource(g: WorkflowGraph, id: string, output: number, seen: Set<string>): boolean {
  const t = g.outputType(id, output);
  if (t !== undefined) return typeIs(t, "STRING");
  if (isEncoder(g, id) || /Conditioning/i.test(g.classType(id)) || seen.has(id)) return false;
  seen.add(id);
  return g.inputNames(id).some((n) => {
    const v = g.inputs(id)[n];
    if (!STRING_NAME.test(n)) return false;
    const src = g.source(v);
    return typeof v === "string" || (src !== undefined && isStringSource(g, src.node, src.output, seen));
  });
}

/**
 * Of a string node's text inputs (or a loader's positive / negative), the one that feeds output `output`:
 * the input named like that output, else by polarity, else the first filled one.
 */
export function pickStringInput(g: WorkflowGraph, id: string, output: number, polarity: Polarity): string | undefined {
  const typed = g.inputNames(id).filter((n) => isTextInput(g, id, n, STRING_NAME));
  // STRING inputs by type include separators and formats; the ones named like text come first.
  const named = typed.filter((n) => STRING_NAME.test(n));
  const names = named.length > 0 ? named : typed;
  if (names.length <= 1) return names[0];
  const outName = g.outputName(id, output);
  if (outName !== undefined && names.includes(outName)) return outName;
  const own = names.filter((n) => (polarity === "positive" ? /pos/i : /neg/i).test(n));
  const other = polarity === "positive" ? /neg/i : /pos/i;
  const pool = own.length > 0 ? own : names.filter((n) => !other.test(n));
  const filled = pool.find((n) => {
    const v = g.inputs(id)[n];
    return (typeof v === "string" && v.trim() !== "") || g.source(v) !== undefined;
  });
  return filled ?? pool[0] ?? names[0];
}

/** Follows one text input through string nodes to the literal that holds the text. */
export function traceText(g: WorkflowGraph, ref: InputRef, polarity: Polarity, seen = new Set<string>()): InputRef[] {
  const v = g.value(ref);
  if (typeof v === "string") return [ref];
  const src = g.source(v);
  if (src === undefined || seen.has(src.node)) return [];
  seen.add(src.node);
  const input = pickStringInput(g, src.node, src.output, polarity);
  return input === undefined ? [] : traceText(g, { node: src.node, input }, polarity, seen);
}

function encoderAt(g: WorkflowGraph, id: string, inputs: string[], polarity: Polarity): Encoder {
  return { node: id, refs: dedupe(inputs.flatMap((input) => traceText(g, { node: id, input }, polarity))) };
}

/** Conditioning inputs a walk follows through a node that is not an encoder. */
function conditioningInputs(g: WorkflowGraph, id: string, polarity: Polarity): string[] {
  const names = g.inputNames(id).filter((n) => g.source(g.inputs(id)[n]) !== undefined);
  if (names.includes(polarity)) return [polarity];
  const typed = (n: string): boolean | undefined => {
    const t = g.inputSpec(id, n)?.type;
    return t === undefined ? undefined : typeIs(t, "CONDITIONING");
  };
  return names.filter((n) => n !== opposite(polarity) && (typed(n) ?? CONDITIONING_NAME.test(n)));
}

/**
 * Walks conditioning back from a link to the encoders that make it. A node holding the prompt as a
 * literal (or string-linked) `positive`/`negative` input (Efficient Loader, pipe loaders) is an encoder
 * too; ConditioningZeroOut ends a branch with no text.
 */
export function walkConditioning(g: WorkflowGraph, start: unknown, polarity: Polarity, seen = new Set<string>()): Encoder[] {
  const src = g.source(start);
  if (src === undefined || seen.has(src.node)) return [];
  const id = src.node;
  seen.add(id);
  if (isEncoder(g, id)) return [encoderAt(g, id, encoderTextInputs(g, id), polarity)];
  if (g.classType(id) === "ConditioningZeroOut") return [];
  const own = g.inputs(id)[polarity];
  const ownSrc = g.source(own);
  const ownIsText =
    g.inputSpec(id, polarity) !== undefined
      ? typeIs(g.inputSpec(id, polarity)?.type, "STRING")
      : typeof own === "string" || (ownSrc !== undefined && isStringSource(g, ownSrc.node, ownSrc.output, new Set()));
  if (ownIsText) return [encoderAt(g, id, [polarity], polarity)];
  return conditioningInputs(g, id, polarity).flatMap((n) => walkConditioning(g, g.inputs(id)[n], polarity, seen));
}

/** Upstream along pipe inputs to the first node that holds `polarity` (a pipe loader, ToBasicPipe). */
function pipeHolder(g: WorkflowGraph, sampler: string, polarity: Polarity): string | undefined {
  const queue = Object.keys(g.inputs(sampler))
    .filter((n) => /pipe/i.test(n))
    .map((n) => g.link(sampler, n)?.node);
  const seen = new Set<string>();
  while (queue.length > 0) {
    const id = queue.shift();
    if (id === undefined || seen.has(id)) continue;
    seen.add(id);
    if (Object.hasOwn(g.inputs(id), polarity)) return id;
    for (const n of Object.keys(g.inputs(id))) if (/pipe/i.test(n)) queue.push(g.link(id, n)?.node);
  }
  return undefined;
}

/** The encoders behind a sampler's positive or negative conditioning: direct, through a guider, or a pipe. */
export function samplerEncoders(g: WorkflowGraph, sampler: string, polarity: Polarity): Encoder[] {
  const ins = g.inputs(sampler);
  const direct = (polarity === "positive" ? POSITIVE_AT_SAMPLER : NEGATIVE_AT_SAMPLER).find((n) => g.link(sampler, n) !== undefined);
  if (direct !== undefined) return walkConditioning(g, ins[direct], polarity);
  const guider = g.link(sampler, "guider")?.node;
  if (guider !== undefined) {
    if (g.link(guider, polarity) !== undefined) return walkConditioning(g, g.inputs(guider)[polarity], polarity);
    if (polarity === "negative") return []; // BasicGuider (Flux) carries positive conditioning only
    const seen = new Set<string>([guider]);
    return conditioningInputs(g, guider, polarity).flatMap((n) => walkConditioning(g, g.inputs(guider)[n], polarity, seen));
  }
  const holder = pipeHolder(g, sampler, polarity);
  if (holder === undefined) return [];
  const v = g.inputs(holder)[polarity];
  if (typeof v === "string") return [{ node: holder, refs: [{ node: holder, input: polarity }] }];
  const src = g.source(v);
  if (
    src !== undefined &&
    (g.outputType(src.node, src.output) === undefined
      ? isStringSource(g, src.node, src.output, new Set())
      : typeIs(g.outputType(src.node, src.output), "STRING"))
  ) {
    return [encoderAt(g, holder, [polarity], polarity)];
  }
  return walkConditioning(g, v, polarity, new Set([holder]));
}

/** The current text of a ref, trimmed with whitespace collapsed ("" when it holds no string). */
export function textOf(g: WorkflowGraph, ref: InputRef): string {
  const v = g.value(ref);
  return typeof v === "string" ? v.replace(/\s+/g, " ").trim() : "";
}

/**
 * Whether two encoders hold the same prompt today: they share a text, or one is empty or holds a
 * `{prompt}` template (which marks where the prompt goes and so agrees with anything).
 */
export function sameText(g: WorkflowGraph, a: Encoder, b: Encoder): boolean {
  const texts = (e: Encoder): string[] => e.refs.map((r) => textOf(g, r)).filter((t) => t !== "");
  const ta = texts(a);
  const tb = texts(b);
  if (ta.length === 0 || tb.length === 0) return true;
  if ([...ta, ...tb].some((t) => t.includes("{prompt}"))) return true;
  return ta.some((t) => tb.includes(t));
}
