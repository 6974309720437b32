/**
 * The rest of a plan: the latent that holds batch size and image size, the samplers' steps / cfg /
 * sampler / scheduler inputs, and the loader whose checkpoint `params.checkpoint` sets.
 */
import { PickrankError } from "@pickrank/contract";
import { isLink, type InputRef, type WorkflowGraph } from "./workflow-graph.ts";
import { dedupe, resolveNode, type NodeOverrides } from "./workflow-nodes.ts";
import type { SamplerChain } from "./workflow-samplers.ts";

/** Inputs that carry a latent (or a pipe holding one) towards a sampler. */
const LATENT_PATH = /^(latent_image|samples\d*|latent|optional_latent|pipe|.*_pipe)$/;
const SIZE_INPUTS = { width: ["width", "empty_latent_width"], height: ["height", "empty_latent_height"], batch: ["batch_size"] };

/** Breadth-first upstream from a node along inputs whose names match, to the first node `accept` takes. */
function findUpstream(g: WorkflowGraph, from: string, follow: RegExp, accept: (id: string) => boolean): string | undefined {
  const queue = Object.keys(g.inputs(from))
    .filter((n) => follow.test(n))
    .map((n) => g.link(from, n)?.node);
  const seen = new Set<string>([from]);
  while (queue.length > 0) {
    const id = queue.shift();
    if (id === undefined || seen.has(id)) continue;
    seen.add(id);
    if (accept(id)) return id;
    for (const n of Object.keys(g.inputs(id))) if (follow.test(n)) queue.push(g.link(id, n)?.node);
  }
  return undefined;
}

/** The batch, width and height inputs of the latent node feeding the first sampler (or the named one). */
export function latentRefs(
  g: WorkflowGraph,
  chain: SamplerChain,
  nodes: NodeOverrides,
): { batch?: InputRef; width?: InputRef; height?: InputRef } {
  const holdsBatch = (id: string): boolean => "batch_size" in g.inputs(id);
  let latent: string | undefined;
  if (nodes.latent !== undefined) {
    latent = resolveNode(g, "latent", nodes.latent, g.ids.filter(holdsBatch)).node;
  } else {
    for (const r of chain.roots) {
      latent = holdsBatch(r) ? r : findUpstream(g, r, LATENT_PATH, holdsBatch);
      if (latent !== undefined) break;
    }
  }
  if (latent === undefined) return {};
  const ins = g.inputs(latent);
  const literal = (names: string[]): InputRef | undefined => {
    const input = names.find((n) => n in ins && !isLink(ins[n]));
    return input === undefined ? undefined : { node: latent, input };
  };
  const out: { batch?: InputRef; width?: InputRef; height?: InputRef } = {};
  const batch = literal(SIZE_INPUTS.batch);
  const width = literal(SIZE_INPUTS.width);
  const height = literal(SIZE_INPUTS.height);
  if (batch) out.batch = batch;
  if (width) out.width = width;
  if (height) out.height = height;
  return out;
}

/** A literal input of the sampler itself, or of the node behind one of its link inputs (BasicScheduler, KSamplerSelect, CFGGuider). */
function samplerSetting(g: WorkflowGraph, sampler: string, input: string, via: string[]): InputRef | undefined {
  const ins = g.inputs(sampler);
  if (input in ins && !isLink(ins[input])) return { node: sampler, input };
  for (const v of via) {
    const src = g.link(sampler, v)?.node;
    if (src !== undefined && input in g.inputs(src) && !isLink(g.inputs(src)[input])) return { node: src, input };
  }
  return undefined;
}

/** The steps / cfg / sampler_name / scheduler inputs of every sampler of the chain. */
export function settingRefs(
  g: WorkflowGraph,
  chain: SamplerChain,
): { steps: InputRef[]; cfg: InputRef[]; samplerName: InputRef[]; scheduler: InputRef[] } {
  const setting = (input: string, via: string[]): InputRef[] =>
    dedupe(chain.samplers.map((s) => samplerSetting(g, s, input, via)).filter((r): r is InputRef => r !== undefined));
  return {
    steps: setting("steps", ["sigmas"]),
    cfg: setting("cfg", ["guider"]),
    samplerName: setting("sampler_name", ["sampler"]),
    scheduler: setting("scheduler", ["sigmas"]),
  };
}

/** The loader behind the first sampler's model (through a guider or a pipe), or the named one. */
export function checkpointRef(g: WorkflowGraph, chain: SamplerChain, nodes: NodeOverrides): InputRef | undefined {
  const loaderInput = (id: string): string | undefined => ["ckpt_name", "unet_name"].find((k) => k in g.inputs(id));
  if (nodes.checkpoint !== undefined) {
    const id = resolveNode(
      g,
      "checkpoint",
      nodes.checkpoint,
      g.ids.filter((x) => loaderInput(x) !== undefined),
    ).node;
    const input = loaderInput(id);
    if (input === undefined) {
      throw new PickrankError(
        "BAD_INPUT",
        `Expected nodes.checkpoint to name a loader node with ckpt_name or unet_name but ${g.label(id)} has neither`,
        {
          details: { parameter: "nodes.checkpoint" },
        },
      );
    }
    return { node: id, input };
  }
  const root = chain.roots[0];
  if (root === undefined) return undefined;
  const guider = g.link(root, "guider")?.node;
  const from = "model" in g.inputs(root) || guider === undefined ? root : guider;
  const loader = findUpstream(g, from, /^(model|pipe|.*_pipe)$/, (x) => loaderInput(x) !== undefined);
  return loader === undefined ? undefined : { node: loader, input: loaderInput(loader)! };
}
