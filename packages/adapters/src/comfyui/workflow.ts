import { z } from "zod";
import { PickrankError, invalidParameter } from "@pickrank/contract";
import type { GenerationParams } from "@pickrank/contract";

/** ComfyUI's API format: `{ id: { class_type, inputs } }`; an input is a literal or a link `[node_id, output_index]`. */
export type ComfyWorkflow = Record<string, { class_type: string; inputs: Record<string, unknown>; _meta?: { title?: string } }>;

/** One input of one node. */
export interface InputRef {
  node: string;
  input: string;
}

/**
 * Node ids the user names when detection is ambiguous or wrong. Each entry is a node id ("6") or a
 * node id and input ("6.text_g"); the plural fields take one or several.
 */
export interface NodeOverrides {
  /** The sampler(s) whose images are the candidates (the last of a chain: the refiner, the hires pass). */
  sampler?: string | string[];
  positive?: string | string[];
  negative?: string | string[];
  seed?: string | string[];
  /** The empty-latent node that holds width, height and batch_size. */
  latent?: string;
  output?: string | string[];
  /** The loader whose ckpt_name / unet_name `params.checkpoint` sets. */
  checkpoint?: string;
}

export interface WorkflowPlan {
  /** The sampler chain that makes the candidates, first to last. */
  samplers: string[];
  positive: InputRef[];
  negative: InputRef[];
  seed: InputRef[];
  batch?: InputRef;
  width?: InputRef;
  height?: InputRef;
  steps: InputRef[];
  cfg: InputRef[];
  samplerName: InputRef[];
  scheduler: InputRef[];
  checkpoint?: InputRef;
  outputs: { node: string; classType: string }[];
  /** Images arrive as binary WebSocket frames (SaveImageWebsocket) instead of through /history and /view. */
  websocketOutput: boolean;
}

const nodeSchema = z.object({
  class_type: z.string().min(1),
  inputs: z.record(z.string(), z.unknown()),
  _meta: z.object({ title: z.string().optional() }).loose().optional(),
}).loose();
const workflowSchema = z.record(z.string(), nodeSchema);

const TEXT_INPUTS: Record<string, string[]> = {
  CLIPTextEncode: ["text"],
  CLIPTextEncodeSDXL: ["text_g", "text_l"],
  CLIPTextEncodeSDXLRefiner: ["text"],
  CLIPTextEncodeFlux: ["clip_l", "t5xxl"],
  CLIPTextEncodeSD3: ["clip_l", "clip_g", "t5xxl"],
  CLIPTextEncodeHunyuanDiT: ["bert", "mt5xl"],
};
/** Inputs that carry conditioning through guidance, combine, area and ControlNet nodes. */
const CONDITIONING_INPUTS = ["conditioning", "conditioning_1", "conditioning_2", "conditioning_to", "conditioning_from", "cond"];
const LATENT_INPUTS = ["latent_image", "samples", "latent", "samples1", "samples2"];
const OUTPUT_PREFERENCE = ["SaveImageWebsocket", "SaveImage", "PreviewImage"];
/** Inputs of a primitive/helper node that hold the value a link passes on. */
const STRING_VALUE_INPUTS = ["text", "value", "string", "prompt", "text_g", "text_l"];
const INT_VALUE_INPUTS = ["seed", "noise_seed", "value", "int", "number"];

export function isLink(v: unknown): v is [string | number, number] {
  return Array.isArray(v) && v.length === 2 && (typeof v[0] === "string" || typeof v[0] === "number") && typeof v[1] === "number";
}

/** Accepts the workflow as an object or JSON text and checks it is API format (not the UI's saved format). */
export function parseWorkflow(workflow: unknown): ComfyWorkflow {
  let wf = workflow;
  if (typeof wf === "string") {
    try {
      wf = JSON.parse(wf);
    } catch (e) {
      throw new PickrankError("BAD_INPUT", `Expected the workflow as JSON in ComfyUI's API format but the text does not parse: ${(e as Error).message}`, { cause: e });
    }
  }
  if (wf !== null && typeof wf === "object" && !Array.isArray(wf) && Array.isArray((wf as Record<string, unknown>).nodes) && "links" in wf) {
    throw new PickrankError("BAD_INPUT", "Expected a workflow in ComfyUI's API format ({ id: { class_type, inputs } }) but received the UI format (nodes + links); in ComfyUI use Workflow → Export (API) and pass that file", {
      details: { parameter: "workflow" },
    });
  }
  const parsed = workflowSchema.safeParse(wf);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue ? issue.path.join(".") : "";
    throw new PickrankError("BAD_INPUT", `Expected a workflow in ComfyUI's API format ({ id: { class_type, inputs } }) but ${where === "" ? "the value" : `node entry "${where}"`} does not fit: ${issue?.message ?? "invalid"}`, {
      details: { parameter: "workflow", path: where },
    });
  }
  if (Object.keys(parsed.data).length === 0) throw invalidParameter("workflow", "a workflow with at least one node", wf);
  return parsed.data as ComfyWorkflow;
}

function label(wf: ComfyWorkflow, id: string): string {
  const n = wf[id];
  return n ? `${n.class_type} #${id}` : `#${id}`;
}

function linkSource(wf: ComfyWorkflow, v: unknown): string | undefined {
  if (!isLink(v)) return undefined;
  const id = String(v[0]);
  return wf[id] ? id : undefined;
}

function ancestors(wf: ComfyWorkflow, id: string, memo: Map<string, Set<string>>): Set<string> {
  const known = memo.get(id);
  if (known) return known;
  const out = new Set<string>();
  memo.set(id, out); // guards against cycles in a broken graph
  for (const v of Object.values(wf[id]?.inputs ?? {})) {
    const src = linkSource(wf, v);
    if (src === undefined || out.has(src)) continue;
    out.add(src);
    for (const a of ancestors(wf, src, memo)) out.add(a);
  }
  return out;
}

function isSampler(wf: ComfyWorkflow, id: string): boolean {
  const n = wf[id];
  if (!n) return false;
  // KSamplerSelect only picks a sampler function; real samplers take a latent.
  if ((/^KSampler/.test(n.class_type) || n.class_type === "SamplerCustom" || n.class_type === "SamplerCustomAdvanced") && "latent_image" in n.inputs) return true;
  return isLink(n.inputs.latent_image) && (isLink(n.inputs.positive) || isLink(n.inputs.guider));
}

/** Follows a link input to the node feeding it and picks that node's literal input of the wanted kind. */
function literalThroughLink(wf: ComfyWorkflow, ref: InputRef, kind: "string" | "number", names: string[]): InputRef | undefined {
  const v = wf[ref.node]?.inputs[ref.input];
  if (typeof v === kind) return ref;
  const src = linkSource(wf, v);
  if (src === undefined) return undefined;
  const inputs = wf[src]?.inputs ?? {};
  for (const name of names) if (typeof inputs[name] === kind) return { node: src, input: name };
  for (const name of names) if (isLink(inputs[name])) return literalThroughLink(wf, { node: src, input: name }, kind, names);
  return undefined;
}

function textTargets(wf: ComfyWorkflow, id: string): InputRef[] {
  const n = wf[id];
  if (!n) return [];
  const names = TEXT_INPUTS[n.class_type] ?? (/TextEncode/.test(n.class_type) ? ["text"] : STRING_VALUE_INPUTS.filter((k) => k in n.inputs).slice(0, 1));
  const out: InputRef[] = [];
  for (const input of names) {
    if (!(input in n.inputs)) continue;
    const t = literalThroughLink(wf, { node: id, input }, "string", STRING_VALUE_INPUTS);
    if (t) out.push(t);
  }
  return out;
}

function isTextEncoder(wf: ComfyWorkflow, id: string): boolean {
  const c = wf[id]?.class_type ?? "";
  return c in TEXT_INPUTS || /TextEncode/.test(c);
}

/** Walks conditioning back from a sampler input to the text-encode nodes (ConditioningZeroOut ends a branch: no text). */
function conditioningTexts(wf: ComfyWorkflow, start: unknown, polarity: "positive" | "negative", seen = new Set<string>()): { encoders: string[]; refs: InputRef[] } {
  const out = { encoders: [] as string[], refs: [] as InputRef[] };
  const id = linkSource(wf, start);
  if (id === undefined || seen.has(id)) return out;
  seen.add(id);
  const n = wf[id]!;
  if (isTextEncoder(wf, id)) {
    out.encoders.push(id);
    out.refs.push(...textTargets(wf, id));
    return out;
  }
  if (n.class_type === "ConditioningZeroOut") return out;
  for (const name of [...CONDITIONING_INPUTS, polarity]) {
    if (!(name in n.inputs)) continue;
    const sub = conditioningTexts(wf, n.inputs[name], polarity, seen);
    out.encoders.push(...sub.encoders);
    out.refs.push(...sub.refs);
  }
  return out;
}

function samplerConditioning(wf: ComfyWorkflow, sampler: string, polarity: "positive" | "negative"): { encoders: string[]; refs: InputRef[] } {
  const n = wf[sampler]!;
  if (polarity in n.inputs) return conditioningTexts(wf, n.inputs[polarity], polarity);
  const guider = linkSource(wf, n.inputs.guider);
  if (guider === undefined) return { encoders: [], refs: [] };
  const g = wf[guider]!;
  if (polarity in g.inputs) return conditioningTexts(wf, g.inputs[polarity], polarity);
  // BasicGuider (Flux) carries only positive conditioning.
  if (polarity === "positive" && "conditioning" in g.inputs) return conditioningTexts(wf, g.inputs.conditioning, polarity);
  return { encoders: [], refs: [] };
}

function seedRefs(wf: ComfyWorkflow, sampler: string): InputRef[] {
  const n = wf[sampler]!;
  for (const input of ["seed", "noise_seed"]) {
    if (input in n.inputs) {
      const r = literalThroughLink(wf, { node: sampler, input }, "number", INT_VALUE_INPUTS);
      return r ? [r] : [];
    }
  }
  const noise = linkSource(wf, n.inputs.noise);
  if (noise !== undefined && "noise_seed" in wf[noise]!.inputs) {
    const r = literalThroughLink(wf, { node: noise, input: "noise_seed" }, "number", INT_VALUE_INPUTS);
    return r ? [r] : [];
  }
  return []; // DisableNoise, or a sampler without noise
}

/** A literal input of the sampler itself, or of the node behind one of its link inputs (BasicScheduler, KSamplerSelect, CFGGuider). */
function samplerSetting(wf: ComfyWorkflow, sampler: string, input: string, via: string[]): InputRef | undefined {
  const n = wf[sampler]!;
  if (input in n.inputs && !isLink(n.inputs[input])) return { node: sampler, input };
  for (const v of via) {
    const src = linkSource(wf, n.inputs[v]);
    if (src !== undefined && input in wf[src]!.inputs && !isLink(wf[src]!.inputs[input])) return { node: src, input };
  }
  return undefined;
}

function findUpstream(wf: ComfyWorkflow, start: unknown, follow: string[], accept: (id: string) => boolean): string | undefined {
  const seen = new Set<string>();
  const queue: string[] = [];
  const first = linkSource(wf, start);
  if (first !== undefined) queue.push(first);
  while (queue.length > 0) {
    const id = queue.shift()!;
    if (seen.has(id)) continue;
    seen.add(id);
    if (accept(id)) return id;
    for (const name of follow) {
      const src = linkSource(wf, wf[id]!.inputs[name]);
      if (src !== undefined) queue.push(src);
    }
  }
  return undefined;
}

function asList(v: string | string[] | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v : [v];
}

/** "6" or "6.text_g" → the refs it names; a bare node id means its text (or seed) inputs. */
function explicitRefs(wf: ComfyWorkflow, field: string, spec: string[], pick: (id: string) => InputRef[]): InputRef[] {
  const out: InputRef[] = [];
  for (const s of spec) {
    if (typeof s !== "string") throw invalidParameter(`nodes.${field}`, "node id strings such as \"6\" or \"6.text\"", s);
    const dot = s.indexOf(".");
    const id = dot < 0 ? s : s.slice(0, dot);
    const node = wf[id];
    if (!node) throw new PickrankError("BAD_INPUT", `Expected an existing node id for nodes.${field} but the workflow has no node "${id}" (it has ${Object.keys(wf).join(", ")})`, { details: { parameter: `nodes.${field}` } });
    if (dot >= 0) {
      const input = s.slice(dot + 1);
      if (!(input in node.inputs)) throw new PickrankError("BAD_INPUT", `Expected an input of ${label(wf, id)} for nodes.${field} but it has no input "${input}" (it has ${Object.keys(node.inputs).join(", ")})`, { details: { parameter: `nodes.${field}` } });
      out.push({ node: id, input });
    } else {
      const refs = pick(id);
      if (refs.length === 0) throw new PickrankError("BAD_INPUT", `Expected nodes.${field} to name a node with a ${field} input but ${label(wf, id)} has none it can set; name the input too, e.g. "${id}.text"`, { details: { parameter: `nodes.${field}` } });
      out.push(...refs);
    }
  }
  return out;
}

function dedupe(refs: InputRef[]): InputRef[] {
  const seen = new Set<string>();
  return refs.filter((r) => {
    const k = `${r.node}\u0000${r.input}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function quoteText(wf: ComfyWorkflow, refs: InputRef[]): string {
  const r = refs[0];
  const v = r ? wf[r.node]?.inputs[r.input] : undefined;
  if (typeof v !== "string") return "";
  return ` ${JSON.stringify(v.length > 40 ? `${v.slice(0, 37)}...` : v)}`;
}

/**
 * Finds where the prompt, negative prompt, seed, batch size, size, sampler settings and checkpoint go,
 * and which nodes produce the candidate images. Throws BAD_INPUT naming exactly what is ambiguous.
 */
export function detectWorkflow(workflow: unknown, nodes: NodeOverrides = {}): WorkflowPlan {
  const wf = parseWorkflow(workflow);
  const memo = new Map<string, Set<string>>();
  const allSamplers = Object.keys(wf).filter((id) => isSampler(wf, id));

  // 1. The sampler chain: samplers feeding each other (base → refiner, first pass → hires) form one chain.
  let finals: string[];
  const named = asList(nodes.sampler);
  if (named !== undefined) {
    for (const id of named) {
      if (!wf[id]) throw new PickrankError("BAD_INPUT", `Expected an existing sampler node id for nodes.sampler but the workflow has no node "${id}"`, { details: { parameter: "nodes.sampler" } });
    }
    finals = named;
  } else {
    if (allSamplers.length === 0) {
      throw new PickrankError("BAD_INPUT", "Expected a workflow with a sampler node (KSampler, KSamplerAdvanced, SamplerCustom or SamplerCustomAdvanced) but found none; name it with options.nodes.sampler if it is a custom node", { details: { parameter: "workflow" } });
    }
    finals = allSamplers.filter((s) => !allSamplers.some((o) => o !== s && ancestors(wf, o, memo).has(s)));
    if (finals.length > 1) {
      const described = finals.map((s) => {
        const pos = samplerConditioning(wf, s, "positive");
        const from = pos.encoders.length > 0 ? pos.encoders.map((e) => label(wf, e)).join(" + ") + quoteText(wf, pos.refs) : "no text node";
        return `${label(wf, s)} (positive prompt from ${from})`;
      });
      const texts = new Set(finals.map((s) => samplerConditioning(wf, s, "positive").encoders.sort().join(",")));
      const what = texts.size > 1 ? "with different positive prompts" : "that do not feed each other";
      throw new PickrankError("BAD_INPUT", `Workflow is ambiguous: it has ${finals.length} independent samplers ${what}: ${described.join("; ")}. pickrank cannot tell which one makes the candidates. Name it with options.nodes.sampler, e.g. { nodes: { sampler: "${finals[0]}" } } (and nodes.positive / nodes.negative / nodes.output if detection should differ)`, {
        details: { parameter: "nodes.sampler", samplers: finals },
      });
    }
  }
  const chainSet = new Set<string>();
  for (const f of finals) {
    chainSet.add(f);
    for (const a of ancestors(wf, f, memo)) if (allSamplers.includes(a)) chainSet.add(a);
  }
  // First to last: a sampler comes after every sampler among its ancestors.
  const samplers = [...chainSet].sort((a, b) => ancestors(wf, a, memo).size - ancestors(wf, b, memo).size);
  const roots = samplers.filter((s) => ![...ancestors(wf, s, memo)].some((a) => chainSet.has(a)));

  // 2. Prompts.
  const positive = nodes.positive !== undefined
    ? explicitRefs(wf, "positive", asList(nodes.positive)!, (id) => textTargets(wf, id))
    : dedupe(samplers.flatMap((s) => samplerConditioning(wf, s, "positive").refs));
  if (positive.length === 0) {
    throw new PickrankError("BAD_INPUT", `Expected the positive input of ${samplers.map((s) => label(wf, s)).join(", ")} to lead to a text-encode node (CLIPTextEncode, CLIPTextEncodeSDXL, CLIPTextEncodeFlux …) but found none; name it with options.nodes.positive, e.g. "6" or "6.text"`, {
      details: { parameter: "nodes.positive" },
    });
  }
  const negative = nodes.negative !== undefined
    ? explicitRefs(wf, "negative", asList(nodes.negative)!, (id) => textTargets(wf, id))
    : dedupe(samplers.flatMap((s) => samplerConditioning(wf, s, "negative").refs));
  const clash = positive.find((p) => negative.some((n) => n.node === p.node && n.input === p.input));
  if (clash) {
    throw new PickrankError("BAD_INPUT", `Workflow is ambiguous: ${label(wf, clash.node)} input "${clash.input}" feeds both the positive and the negative conditioning; name the text nodes with options.nodes.positive and options.nodes.negative`, {
      details: { parameter: "nodes.positive", node: clash.node },
    });
  }

  // 3. Seeds: every sampler of the chain gets the candidate's seed, so (seed, workflow) reproduces it.
  const seed = nodes.seed !== undefined
    ? explicitRefs(wf, "seed", asList(nodes.seed)!, (id) => ["seed", "noise_seed", "value"].filter((k) => typeof wf[id]!.inputs[k] === "number").slice(0, 1).map((input) => ({ node: id, input })))
    : dedupe(samplers.flatMap((s) => seedRefs(wf, s)));
  if (seed.length === 0) {
    throw new PickrankError("BAD_INPUT", `Expected a seed input (KSampler.seed, KSamplerAdvanced.noise_seed or RandomNoise.noise_seed) for ${samplers.map((s) => label(wf, s)).join(", ")} but found none, so N candidates would be identical; name it with options.nodes.seed`, {
      details: { parameter: "nodes.seed" },
    });
  }

  // 4. Latent size and batch.
  let latent: string | undefined;
  if (nodes.latent !== undefined) {
    if (!wf[nodes.latent]) throw new PickrankError("BAD_INPUT", `Expected an existing node id for nodes.latent but the workflow has no node "${nodes.latent}"`, { details: { parameter: "nodes.latent" } });
    latent = nodes.latent;
  } else {
    const found = new Set<string>();
    for (const r of roots) {
      const id = findUpstream(wf, wf[r]!.inputs.latent_image, LATENT_INPUTS, (x) => "batch_size" in wf[x]!.inputs);
      if (id !== undefined) found.add(id);
    }
    latent = [...found][0];
  }
  const latentInputs = latent === undefined ? {} : wf[latent]!.inputs;
  const literal = (input: string): InputRef | undefined => (latent !== undefined && input in latentInputs && !isLink(latentInputs[input]) ? { node: latent, input } : undefined);

  // 5. Sampler settings, on the sampler or the node behind it (Flux: BasicScheduler, KSamplerSelect, CFGGuider).
  const setting = (input: string, via: string[]): InputRef[] =>
    dedupe(samplers.map((s) => samplerSetting(wf, s, input, via)).filter((r): r is InputRef => r !== undefined));

  // 6. Checkpoint: the loader behind the first sampler's model.
  let checkpoint: InputRef | undefined;
  if (nodes.checkpoint !== undefined) {
    const n = wf[nodes.checkpoint];
    const input = n && ["ckpt_name", "unet_name"].find((k) => k in n.inputs);
    if (!n || !input) throw new PickrankError("BAD_INPUT", `Expected nodes.checkpoint to name a loader node with ckpt_name or unet_name but ${n ? label(wf, nodes.checkpoint) + " has neither" : `there is no node "${nodes.checkpoint}"`}`, { details: { parameter: "nodes.checkpoint" } });
    checkpoint = { node: nodes.checkpoint, input };
  } else if (roots[0] !== undefined) {
    const r = wf[roots[0]]!;
    const start = "model" in r.inputs ? r.inputs.model : wf[linkSource(wf, r.inputs.guider) ?? ""]?.inputs.model;
    const loader = findUpstream(wf, start, ["model"], (x) => "ckpt_name" in wf[x]!.inputs || "unet_name" in wf[x]!.inputs);
    if (loader !== undefined) checkpoint = { node: loader, input: "ckpt_name" in wf[loader]!.inputs ? "ckpt_name" : "unet_name" };
  }

  // 7. Outputs downstream of the chain's last sampler(s).
  let outputs: { node: string; classType: string }[];
  const namedOut = asList(nodes.output);
  if (namedOut !== undefined) {
    outputs = namedOut.map((id) => {
      const n = wf[id];
      if (!n) throw new PickrankError("BAD_INPUT", `Expected an existing output node id for nodes.output but the workflow has no node "${id}"`, { details: { parameter: "nodes.output" } });
      return { node: id, classType: n.class_type };
    });
  } else {
    const downstream = Object.keys(wf).filter((id) => OUTPUT_PREFERENCE.includes(wf[id]!.class_type) && finals.some((f) => ancestors(wf, id, memo).has(f)));
    const cls = OUTPUT_PREFERENCE.find((c) => downstream.some((id) => wf[id]!.class_type === c));
    const picked = downstream.filter((id) => wf[id]!.class_type === cls);
    if (picked.length === 0) {
      throw new PickrankError("BAD_INPUT", `Expected an output node (SaveImage, PreviewImage or SaveImageWebsocket) downstream of ${finals.map((s) => label(wf, s)).join(", ")} but found none; add one or name it with options.nodes.output`, {
        details: { parameter: "nodes.output" },
      });
    }
    if (picked.length > finals.length) {
      throw new PickrankError("BAD_INPUT", `Workflow is ambiguous: ${picked.length} ${cls} nodes (${picked.map((id) => label(wf, id)).join(", ")}) take images from ${finals.map((s) => label(wf, s)).join(", ")}; name the one whose images are the candidates with options.nodes.output, e.g. { nodes: { output: "${picked[picked.length - 1]}" } }`, {
        details: { parameter: "nodes.output", outputs: picked },
      });
    }
    outputs = picked.map((id) => ({ node: id, classType: wf[id]!.class_type }));
  }

  const plan: WorkflowPlan = {
    samplers,
    positive,
    negative,
    seed,
    steps: setting("steps", ["sigmas"]),
    cfg: setting("cfg", ["guider"]),
    samplerName: setting("sampler_name", ["sampler"]),
    scheduler: setting("scheduler", ["sigmas"]),
    outputs,
    websocketOutput: outputs.every((o) => o.classType === "SaveImageWebsocket"),
  };
  const batch = literal("batch_size");
  const width = literal("width");
  const height = literal("height");
  if (batch) plan.batch = batch;
  if (width) plan.width = width;
  if (height) plan.height = height;
  if (checkpoint) plan.checkpoint = checkpoint;
  return plan;
}

export interface ApplyValues {
  prompt: string;
  negativePrompt?: string;
  seed: number;
  batchSize?: number;
  params?: GenerationParams;
}

function set(wf: ComfyWorkflow, ref: InputRef, value: unknown): void {
  const n = wf[ref.node];
  if (n) n.inputs[ref.input] = value;
}

/** A copy of the workflow with the prompt, seed, batch size and params written where the plan says. */
export function applyWorkflow(workflow: ComfyWorkflow, plan: WorkflowPlan, v: ApplyValues): ComfyWorkflow {
  const wf = structuredClone(workflow);
  const put = (refs: InputRef[], text: string): void => {
    for (const r of refs) {
      const old = wf[r.node]?.inputs[r.input];
      // A template like "masterpiece, {prompt}, 8k" keeps its frame.
      set(wf, r, typeof old === "string" && old.includes("{prompt}") ? old.split("{prompt}").join(text) : text);
    }
  };
  put(plan.positive, v.prompt);
  if (v.negativePrompt !== undefined) put(plan.negative, v.negativePrompt);
  for (const r of plan.seed) set(wf, r, v.seed);
  const p = v.params ?? {};
  const need = (ref: InputRef | undefined, what: string): InputRef => {
    if (ref === undefined) throw new PickrankError("BAD_INPUT", `Cannot set ${what}: the workflow has no empty-latent node (EmptyLatentImage, EmptySD3LatentImage) with that input; name it with options.nodes.latent`, { details: { parameter: what } });
    return ref;
  };
  if (v.batchSize !== undefined) {
    if (plan.batch) set(wf, plan.batch, v.batchSize);
    else if (v.batchSize !== 1) need(undefined, "batch_size");
  }
  if (p.width !== undefined) set(wf, need(plan.width, "width"), p.width);
  if (p.height !== undefined) set(wf, need(plan.height, "height"), p.height);
  const setAll = (refs: InputRef[], value: unknown, what: string): void => {
    if (value === undefined) return;
    if (refs.length === 0) throw new PickrankError("BAD_INPUT", `Cannot set ${what}: the workflow's samplers (${plan.samplers.join(", ")}) have no literal ${what} input`, { details: { parameter: what } });
    for (const r of refs) set(wf, r, value);
  };
  setAll(plan.steps, p.steps, "steps");
  setAll(plan.cfg, p.cfgScale, "cfgScale");
  setAll(plan.samplerName, p.sampler, "sampler");
  setAll(plan.scheduler, p.scheduler, "scheduler");
  if (p.checkpoint !== undefined) {
    if (!plan.checkpoint) throw new PickrankError("BAD_INPUT", "Cannot set checkpoint: no CheckpointLoaderSimple / UNETLoader feeds the sampler's model; name it with options.nodes.checkpoint", { details: { parameter: "checkpoint" } });
    set(wf, plan.checkpoint, p.checkpoint);
  }
  for (const [id, inputs] of Object.entries(p.extra ?? {})) {
    const n = wf[id];
    if (!n) throw new PickrankError("BAD_INPUT", `Expected params.extra keys to be node ids of the workflow but there is no node "${id}"`, { details: { parameter: "extra" } });
    if (inputs === null || typeof inputs !== "object" || Array.isArray(inputs)) throw invalidParameter(`extra.${id}`, "an object of input values", inputs);
    Object.assign(n.inputs, inputs);
  }
  return wf;
}
