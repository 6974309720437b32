/**
 * Workflow detection: where a user's API-format ComfyUI workflow takes the prompt, negative prompt, seed,
 * batch size and settings, and which node's images are the candidates. `detectWorkflow` runs named steps:
 * graph indexing (workflow-graph), sampler discovery and seeds (workflow-samplers), prompt-text tracing
 * (workflow-text, workflow-prompts), output discovery (workflow-outputs), the rest (workflow-settings);
 * refusals name the user's own nodes and the CLI flags that settle them (workflow-nodes).
 */
import { z } from "zod";
import { PickrankError, invalidParameter } from "@pickrank/contract";
import type { GenerationParams } from "@pickrank/contract";
import { WorkflowGraph, type ComfyWorkflow, type InputRef, type ObjectInfo } from "./workflow-graph.ts";
import { NODE_FLAGS, resolveRefs, type NodeOverrides } from "./workflow-nodes.ts";
import { discoverOutputs, type OutputNode } from "./workflow-outputs.ts";
import { promptTargets } from "./workflow-prompts.ts";
import { chainSeeds, samplerChain, seedInput, samplerSeed, type SamplerChain } from "./workflow-samplers.ts";
import { checkpointRef, latentRefs, settingRefs } from "./workflow-settings.ts";

export { isLink, type ComfyWorkflow, type InputRef, type ObjectInfo, type ObjectInfoClass } from "./workflow-graph.ts";
export { NODE_FLAGS, type NodeOverrides } from "./workflow-nodes.ts";

/** What detection found: every place a value is written, and the nodes whose images are the candidates. */
export interface WorkflowPlan {
  /** The sampler chain that makes the candidates, first to last. */
  samplers: string[];
  positive: InputRef[];
  negative: InputRef[];
  /** Seeds of the samplers that add noise (a refiner with add_noise disabled is left alone). */
  seed: InputRef[];
  batch?: InputRef;
  width?: InputRef;
  height?: InputRef;
  steps: InputRef[];
  cfg: InputRef[];
  samplerName: InputRef[];
  scheduler: InputRef[];
  checkpoint?: InputRef;
  outputs: OutputNode[];
  /** Images arrive as binary WebSocket frames (SaveImageWebsocket) instead of through /history and /view. */
  websocketOutput: boolean;
  /** What detection chose to leave alone and why (a later pass's own prompt, a refiner's seed), for the user. */
  notes: string[];
}

/** Extra knowledge for detection: the server's node definitions (GET /object_info), when it answered. */
export interface DetectOptions {
  /** Input types (STRING, INT, CONDITIONING, IMAGE …) and the output_node flag of each node class. */
  objectInfo?: ObjectInfo;
}

const nodeSchema = z
  .object({
    class_type: z.string().min(1),
    inputs: z.record(z.string(), z.unknown()),
    _meta: z.object({ title: z.string().optional() }).loose().optional(),
  })
  .loose();
const workflowSchema = z.record(z.string(), nodeSchema);

/** Accepts the workflow as an object or JSON text and checks it is API format (not the UI's saved format). */
export function parseWorkflow(workflow: unknown): ComfyWorkflow {
  let wf = workflow;
  if (typeof wf === "string") {
    try {
      wf = JSON.parse(wf);
    } catch (e) {
      throw new PickrankError(
        "BAD_INPUT",
        `Expected the workflow as JSON in ComfyUI's API format but the text does not parse: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }
  if (
    wf !== null &&
    typeof wf === "object" &&
    !Array.isArray(wf) &&
    Array.isArray((wf as Record<string, unknown>).nodes) &&
    "links" in wf
  ) {
    throw new PickrankError(
      "BAD_INPUT",
      "Expected a workflow in ComfyUI's API format ({ id: { class_type, inputs } }) but received the UI format (nodes + links); " +
        "in ComfyUI use Workflow → Export (API) and pass that file",
      {
        details: { parameter: "workflow" },
      },
    );
  }
  const parsed = workflowSchema.safeParse(wf);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue ? issue.path.join(".") : "";
    throw new PickrankError(
      "BAD_INPUT",
      "Expected a workflow in ComfyUI's API format ({ id: { class_type, inputs } }) but " +
        `${where === "" ? "the value" : `node entry "${where}"`} ` +
        `does not fit: ${issue?.message ?? "invalid"}`,
      {
        details: { parameter: "workflow", path: where },
      },
    );
  }
  if (Object.keys(parsed.data).length === 0) throw invalidParameter("workflow", "a workflow with at least one node", wf);
  return parsed.data as ComfyWorkflow;
}

function seedTargets(g: WorkflowGraph, chain: SamplerChain, nodes: NodeOverrides): { seed: InputRef[]; notes: string[] } {
  if (nodes.seed === undefined) return chainSeeds(g, chain);
  const specs = Array.isArray(nodes.seed) ? nodes.seed : [nodes.seed];
  const pick = (id: string): InputRef[] => {
    const own = samplerSeed(g, id);
    if (own !== undefined) return [own];
    const input = seedInput(g, id) ?? ["value"].find((k) => typeof g.inputs(id)[k] === "number");
    return input === undefined ? [] : [{ node: id, input }];
  };
  return {
    seed: resolveRefs(
      g,
      "seed",
      specs,
      pick,
      g.ids.filter((id) => seedInput(g, id) !== undefined),
    ),
    notes: [],
  };
}

function refuseClash(g: WorkflowGraph, clash: InputRef): never {
  throw new PickrankError(
    "BAD_INPUT",
    `Workflow is ambiguous: ${g.label(clash.node)} input "${clash.input}" feeds both the positive and the negative conditioning; ` +
      `name the text nodes with ${NODE_FLAGS.positive} <id> and ${NODE_FLAGS.negative} <id> (from code: nodes.positive, nodes.negative)`,
    { details: { parameter: NODE_FLAGS.positive, node: clash.node } },
  );
}

function refuseNoPrompt(g: WorkflowGraph, chain: SamplerChain): never {
  const texts = g.ids.filter((id) => Object.values(g.inputs(id)).some((v) => typeof v === "string" && /\s/.test(v))).slice(0, 6);
  throw new PickrankError(
    "BAD_INPUT",
    `Expected the positive conditioning of ${chain.samplers.map((s) => g.label(s)).join(", ")} to lead to a node holding prompt text ` +
      `(CLIPTextEncode, CLIPTextEncodeSDXL, CLIPTextEncodeFlux, a string node …) but found none` +
      `${texts.length > 0 ? ` (nodes holding text: ${texts.map((id) => g.label(id)).join(", ")})` : ""}; ` +
      `name it with --prompt-node ${texts[0] ?? "<id or title>"} (from code: nodes.positive)`,
    { details: { parameter: NODE_FLAGS.positive } },
  );
}

/**
 * Finds where the prompt, negative prompt, seed, batch size, size, sampler settings and checkpoint go,
 * and which nodes produce the candidate images. `nodes` names nodes by id or title where detection should
 * differ; `options.objectInfo` (the server's GET /object_info) lets it follow inputs by type and find
 * custom savers by their output_node flag, and without it the graph alone is read. Throws BAD_INPUT
 * naming what is ambiguous with ids and titles from the graph and the CLI flags (--prompt-node …) that
 * settle it; never writes a prompt over a different one silently.
 */
export function detectWorkflow(workflow: unknown, nodes: NodeOverrides = {}, options: DetectOptions = {}): WorkflowPlan {
  const g = new WorkflowGraph(parseWorkflow(workflow), options.objectInfo);
  const chain = samplerChain(g, nodes);
  const positive = promptTargets(g, chain, "positive", nodes);
  if (positive.refs.length === 0) refuseNoPrompt(g, chain);
  const negative = promptTargets(g, chain, "negative", nodes);
  const clash = positive.refs.find((p) => negative.refs.some((n) => n.node === p.node && n.input === p.input));
  if (clash) refuseClash(g, clash);
  const seeds = seedTargets(g, chain, nodes);
  const outputs = discoverOutputs(g, chain.finals, nodes);
  const plan: WorkflowPlan = {
    samplers: chain.samplers,
    positive: positive.refs,
    negative: negative.refs,
    seed: seeds.seed,
    ...settingRefs(g, chain),
    outputs,
    websocketOutput: outputs.every((o) => o.classType === "SaveImageWebsocket"),
    notes: [...positive.notes, ...negative.notes, ...seeds.notes],
  };
  Object.assign(plan, latentRefs(g, chain, nodes));
  const checkpoint = checkpointRef(g, chain, nodes);
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

/** Where a negative prompt goes; BAD_INPUT when the plan has no place for one (it would be dropped silently). */
function negativeTargets(plan: WorkflowPlan): InputRef[] {
  if (plan.negative.length > 0) return plan.negative;
  const why =
    plan.notes.find((n) => n.startsWith("negative")) ??
    `the negative conditioning of sampler ${plan.samplers.join(", ")} leads to no text (BasicGuider or ConditioningZeroOut)`;
  throw new PickrankError(
    "BAD_INPUT",
    `Cannot set the negative prompt: ${why}; leave out --negative, or name a text node with --negative-node <id> ` +
      "(from code: nodes.negative)",
    { details: { parameter: "negativePrompt" } },
  );
}

/**
 * A copy of the workflow with the prompt, seed, batch size and params written where the plan says.
 * Throws BAD_INPUT for a value the plan has no place for (a negative prompt, a size, a setting).
 */
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
  if (v.negativePrompt !== undefined) put(negativeTargets(plan), v.negativePrompt);
  for (const r of plan.seed) set(wf, r, v.seed);
  const p = v.params ?? {};
  const need = (ref: InputRef | undefined, what: string): InputRef => {
    if (ref === undefined)
      throw new PickrankError(
        "BAD_INPUT",
        `Cannot set ${what}: the workflow has no empty-latent node (EmptyLatentImage, EmptySD3LatentImage) with that input upstream ` +
          "of its first sampler; name the node that holds it with --batch-node <id> (from code: nodes.latent)",
        { details: { parameter: what } },
      );
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
    if (refs.length === 0)
      throw new PickrankError(
        "BAD_INPUT",
        `Cannot set ${what}: the workflow's samplers (${plan.samplers.join(", ")}) have no literal ${what} input`,
        { details: { parameter: what } },
      );
    for (const r of refs) set(wf, r, value);
  };
  setAll(plan.steps, p.steps, "steps");
  setAll(plan.cfg, p.cfgScale, "cfgScale");
  setAll(plan.samplerName, p.sampler, "sampler");
  setAll(plan.scheduler, p.scheduler, "scheduler");
  if (p.checkpoint !== undefined) {
    if (!plan.checkpoint)
      throw new PickrankError(
        "BAD_INPUT",
        "Cannot set checkpoint: no loader with ckpt_name or unet_name (CheckpointLoaderSimple, UNETLoader) feeds the first sampler's " +
          "model; leave out --checkpoint and choose the model in the workflow (from code: nodes.checkpoint names the loader)",
        { details: { parameter: "checkpoint" } },
      );
    set(wf, plan.checkpoint, p.checkpoint);
  }
  for (const [id, inputs] of Object.entries(p.extra ?? {})) {
    const n = wf[id];
    if (!n)
      throw new PickrankError("BAD_INPUT", `Expected params.extra keys to be node ids of the workflow but there is no node "${id}"`, {
        details: { parameter: "extra" },
      });
    if (inputs === null || typeof inputs !== "object" || Array.isArray(inputs))
      throw invalidParameter(`extra.${id}`, "an object of input values", inputs);
    Object.assign(n.inputs, inputs);
  }
  return wf;
}
