/**
 * Sampler discovery and seeds: which nodes sample (by what they take, not by class name), which samplers
 * form the chain that makes the candidates, and which seeds change the image (only samplers that add noise).
 */
import { PickrankError } from "@pickrank/contract";
import { quote, typeIs, type InputRef, type WorkflowGraph } from "./workflow-graph.ts";
import { asList, howToName, parameterOf, resolveNode, type NodeOverrides } from "./workflow-nodes.ts";
import { samplerEncoders, textOf } from "./workflow-text.ts";

/** ComfyUI's own samplers: recognised even when a broken export lost their seed or steps. */
const CORE_SAMPLERS = new Set(["KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced"]);

/** The input that holds a node's seed: seed / noise_seed, else one whose name says seed (INT in /object_info). */
export function seedInput(g: WorkflowGraph, id: string): string | undefined {
  const names = Object.keys(g.inputs(id));
  for (const n of ["noise_seed", "seed"]) if (names.includes(n)) return n;
  return names.find((n) => /seed/i.test(n) && (g.inputSpec(id, n) === undefined || typeIs(g.inputSpec(id, n)?.type, "INT")));
}

/**
 * Whether a node samples: it takes a seed (or a noise input) and steps (or sigmas). That covers ComfyUI's
 * samplers and custom ones (XlabsSampler, pipe samplers, KSampler (Efficient), detailers, tiled upscalers)
 * while leaving out seed nodes, schedulers and sampler pickers.
 */
export function isSampler(g: WorkflowGraph, id: string): boolean {
  const ins = g.inputs(id);
  if (CORE_SAMPLERS.has(g.classType(id)) && "latent_image" in ins) return true;
  const seeded = seedInput(g, id) !== undefined || g.link(id, "noise") !== undefined;
  const stepped = "steps" in ins || g.link(id, "sigmas") !== undefined;
  return seeded && stepped;
}

/** Whether a sampler adds noise (KSamplerAdvanced / pipe samplers: add_noise "disable"; SamplerCustom false; DisableNoise). */
export function addsNoise(g: WorkflowGraph, id: string): boolean {
  const v = g.inputs(id).add_noise;
  if (v === false || (typeof v === "string" && /^(disable|disabled|false|off)$/i.test(v.trim()))) return false;
  const noise = g.link(id, "noise")?.node;
  if (noise !== undefined && seedInput(g, noise) === undefined) return false; // DisableNoise
  return true;
}

/** Follows a number input through links (seed nodes, primitives) to the literal that holds it. */
function traceNumber(g: WorkflowGraph, ref: InputRef, seen = new Set<string>()): InputRef | undefined {
  const v = g.value(ref);
  if (typeof v === "number") return ref;
  const src = g.source(v);
  if (src === undefined || seen.has(src.node)) return undefined;
  seen.add(src.node);
  const names = g.inputNames(src.node).filter((n) => {
    const spec = g.inputSpec(src.node, n);
    return spec !== undefined ? typeIs(spec.type, "INT") : /seed|value|int|number/i.test(n);
  });
  const pick = names.find((n) => /seed/i.test(n)) ?? names[0];
  return pick === undefined ? undefined : traceNumber(g, { node: src.node, input: pick }, seen);
}

/** The literal seed of one sampler: its own seed input, or its noise node's (RandomNoise). */
export function samplerSeed(g: WorkflowGraph, sampler: string): InputRef | undefined {
  const own = seedInput(g, sampler);
  if (own !== undefined) return traceNumber(g, { node: sampler, input: own });
  const noise = g.link(sampler, "noise")?.node;
  const input = noise === undefined ? undefined : seedInput(g, noise);
  return noise === undefined || input === undefined ? undefined : traceNumber(g, { node: noise, input });
}

/** A sampler and where its positive prompt comes from, for messages. */
export function describeSampler(g: WorkflowGraph, s: string): string {
  const enc = samplerEncoders(g, s, "positive");
  const first = enc.find((e) => e.refs.length > 0);
  const text = first?.refs.map((r) => textOf(g, r)).find((t) => t !== "");
  const from =
    enc.length === 0 ? "no text node" : `${enc.map((e) => g.label(e.node)).join(" + ")}${text === undefined ? "" : ` ${quote(text)}`}`;
  return `${g.label(s)} (positive prompt from ${from})`;
}

/** The samplers that make the candidates, first to last, with the last ones and the first ones. */
export interface SamplerChain {
  samplers: string[];
  finals: string[];
  roots: string[];
}

function latest(g: WorkflowGraph, among: string[]): string[] {
  return among.filter((s) => !among.some((o) => o !== s && g.ancestors(o).has(s)));
}

/** Samplers the user's other named nodes point to: upstream of a named output, or downstream of a named prompt or seed. */
function narrowByNamed(g: WorkflowGraph, finals: string[], nodes: NodeOverrides): string[] {
  const named: string[] = [];
  for (const field of ["output", "positive", "negative", "seed"] as const) {
    for (const spec of asList(nodes[field]) ?? []) {
      try {
        named.push(resolveNode(g, field, spec, []).node);
      } catch {
        // a bad name is reported where that field is read
      }
    }
  }
  if (named.length === 0) return finals;
  const related = finals.filter((f) => named.some((n) => n === f || g.ancestors(f).has(n) || g.ancestors(n).has(f)));
  return related.length > 0 ? related : finals;
}

function refuseIndependent(g: WorkflowGraph, finals: string[]): never {
  const texts = new Set(
    finals.map((s) =>
      samplerEncoders(g, s, "positive")
        .map((e) => e.node)
        .sort()
        .join(","),
    ),
  );
  const what = texts.size > 1 ? "with different positive prompts" : "that do not feed each other";
  const outputOf = (s: string): string | undefined => g.ids.find((id) => /Save|Preview/i.test(g.classType(id)) && g.ancestors(id).has(s));
  const ex = outputOf(finals[0]!);
  throw new PickrankError(
    "BAD_INPUT",
    `Workflow is ambiguous: it has ${finals.length} independent samplers ${what}: ` +
      `${finals.map((s) => describeSampler(g, s)).join("; ")}. ` +
      `pickrank cannot tell which one makes the candidates. Name its output with ${howToName("output", ex)}` +
      ` or the sampler with ${howToName("sampler", finals[0])}`,
    { details: { parameter: parameterOf("sampler"), samplers: finals } },
  );
}

function refuseNoSampler(g: WorkflowGraph): never {
  const near = g.ids.filter((id) => seedInput(g, id) !== undefined || /sampler/i.test(g.classType(id))).slice(0, 6);
  throw new PickrankError(
    "BAD_INPUT",
    "Expected a workflow with a sampler node (a node that takes a seed or noise, and steps or sigmas: KSampler, KSamplerAdvanced, " +
      "SamplerCustom, SamplerCustomAdvanced, custom samplers) but found none" +
      `${near.length > 0 ? ` (nodes that come close: ${near.map((id) => g.label(id)).join(", ")})` : ""}; ` +
      `name it with ${howToName("sampler", near[0])}`,
    { details: { parameter: parameterOf("sampler") } },
  );
}

/**
 * Finds the sampler chain: samplers feeding each other (base → refiner, first pass → hires or inpaint
 * pass) are one chain. Named samplers count as samplers even when not recognised (the last named ones
 * end the chain, and it extends upstream to the others and to recognised ones). Throws BAD_INPUT for no
 * sampler or several independent ones.
 */
export function samplerChain(g: WorkflowGraph, nodes: NodeOverrides): SamplerChain {
  const named = asList(nodes.sampler)?.map(
    (s) =>
      resolveNode(
        g,
        "sampler",
        s,
        g.ids.filter((id) => isSampler(g, id)),
      ).node,
  );
  const all = [...new Set([...g.ids.filter((id) => isSampler(g, id)), ...(named ?? [])])];
  let finals: string[];
  if (named !== undefined) finals = latest(g, named);
  else {
    if (all.length === 0) refuseNoSampler(g);
    finals = narrowByNamed(g, latest(g, all), nodes);
    if (finals.length > 1) refuseIndependent(g, finals);
  }
  const chain = new Set<string>(finals);
  for (const f of finals) for (const a of g.ancestors(f)) if (all.includes(a)) chain.add(a);
  // First to last: a sampler comes after every sampler among its ancestors.
  const samplers = [...chain].sort((a, b) => g.ancestors(a).size - g.ancestors(b).size);
  const roots = samplers.filter((s) => ![...g.ancestors(s)].some((a) => chain.has(a)));
  return { samplers, finals, roots };
}

/**
 * The seeds to vary: those of the chain's samplers that add noise (a refiner with add_noise disabled
 * changes nothing). Throws BAD_INPUT, naming the samplers and why, when no seed would change the image.
 */
export function chainSeeds(g: WorkflowGraph, chain: SamplerChain): { seed: InputRef[]; notes: string[] } {
  const noisy = chain.samplers.filter((s) => addsNoise(g, s));
  const seed: InputRef[] = [];
  const missing: string[] = [];
  for (const s of noisy) {
    const r = samplerSeed(g, s);
    if (r === undefined) missing.push(s);
    else if (!seed.some((x) => x.node === r.node && x.input === r.input)) seed.push(r);
  }
  const notes: string[] = [];
  const quiet = chain.samplers.filter((s) => !noisy.includes(s));
  if (seed.length > 0 && quiet.length > 0) notes.push(`seed of ${quiet.map((s) => g.label(s)).join(", ")} left as is: it adds no noise`);
  if (seed.length > 0 && missing.length > 0) notes.push(`no literal seed found for ${missing.map((s) => g.label(s)).join(", ")}`);
  if (seed.length > 0) return { seed, notes };
  const why =
    noisy.length === 0
      ? `none of ${chain.samplers.map((s) => g.label(s)).join(", ")} adds noise (add_noise disabled or DisableNoise)`
      : `${missing.map((s) => g.label(s)).join(", ")} take${missing.length === 1 ? "s" : ""} no literal seed pickrank can follow`;
  const example = noisy[0] ?? g.ids.find((id) => !chain.samplers.includes(id) && seedInput(g, id) !== undefined);
  throw new PickrankError(
    "BAD_INPUT",
    "Expected a seed that changes the image (KSampler.seed, KSamplerAdvanced.noise_seed with add_noise enabled, RandomNoise.noise_seed) " +
      `but ${why}, ` +
      `so N candidates would be identical; enable noise on the first sampler, or name the seed with ${howToName("seed", example)}`,
    { details: { parameter: parameterOf("seed"), samplers: chain.samplers } },
  );
}
