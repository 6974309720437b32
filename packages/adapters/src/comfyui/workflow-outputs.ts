/**
 * Output discovery: the nodes that save or show the chain's final images. Candidates are the output
 * nodes downstream of the last sampler(s) (`output_node` in /object_info) or, without it, the
 * image-consuming nodes at the end of the graph; savers beat previews, and a tie is asked, never guessed.
 */
import { PickrankError } from "@pickrank/contract";
import { typeIs, type WorkflowGraph } from "./workflow-graph.ts";
import { asList, howToName, parameterOf, resolveNode, type NodeOverrides } from "./workflow-nodes.ts";

/** An output node and its class (SaveImageWebsocket sends images as WebSocket frames, others to /history). */
export interface OutputNode {
  node: string;
  classType: string;
}

/** 0: SaveImageWebsocket, 1: saves to disk, 2: previews, comparers and other output nodes. */
type Tier = 0 | 1 | 2;

interface Candidate {
  node: string;
  tier: Tier;
}

const PREVIEW_CLASS = /Preview|Compar|Show|Display/i;
const PREFIX_INPUT = /^(filename_prefix|save_prefix|output_path|filename)$/;
/** Class names of output nodes, for graphs read without /object_info (a dangling ImageInvert is no output). */
const OUTPUT_CLASS = /Save|Preview|Output|Export|Send|Upload|Publish|Show|Display|Compar|Write/i;

function takesImages(g: WorkflowGraph, id: string): boolean {
  return Object.keys(g.inputs(id)).some((n) => {
    if (g.link(id, n) === undefined) return false;
    const t = g.inputSpec(id, n)?.type;
    return t !== undefined ? typeIs(t, "IMAGE") : /image/i.test(n);
  });
}

/** How a node that saves or shows images ranks, or undefined when it is not an output at all. */
function tierOf(g: WorkflowGraph, id: string, finals: string[]): Tier | undefined {
  const cls = g.classType(id);
  const ins = g.inputs(id);
  const flagged = g.isOutputNode(id);
  if (flagged === false) return undefined;
  const mode = ins.image_output;
  if (typeof mode === "string") {
    // Pipe samplers and some savers: "Hide", "Preview", "Save", "Hide/Save", "Disabled".
    if (/save/i.test(mode)) return 1;
    if (/preview/i.test(mode)) return 2;
    return undefined;
  }
  const isSink = g.consumers(id).length === 0;
  const savesByShape = Object.keys(ins).some((n) => PREFIX_INPUT.test(n));
  if (flagged === undefined) {
    const looksLikeOutput = savesByShape || (!finals.includes(id) && takesImages(g, id) && OUTPUT_CLASS.test(cls));
    if (!isSink || !looksLikeOutput) return undefined;
  } else if (!finals.includes(id) && !takesImages(g, id) && !savesByShape) {
    return undefined; // an output node for text or numbers (ShowText), not images
  }
  if (cls === "SaveImageWebsocket") return 0;
  if (PREVIEW_CLASS.test(cls) && !/Save/i.test(cls)) return 2;
  return /Save/i.test(cls) || savesByShape ? 1 : 2;
}

function candidates(g: WorkflowGraph, finals: string[]): Candidate[] {
  const out: Candidate[] = [];
  for (const id of g.ids) {
    const downstream = finals.includes(id) || finals.some((f) => g.ancestors(id).has(f));
    if (!downstream) continue;
    const tier = tierOf(g, id, finals);
    if (tier !== undefined) out.push({ node: id, tier });
  }
  return out.sort((a, b) => a.tier - b.tier);
}

const TIER_WORDS = ["sends images over the WebSocket", "saves", "previews"];
const TIER_VERBS = ["send", "save", "show"];

function describe(g: WorkflowGraph, c: Candidate): string {
  const from = Object.keys(g.inputs(c.node))
    .map((n) => g.link(c.node, n)?.node)
    .find((s) => s !== undefined && s !== c.node);
  const via = from !== undefined && g.classType(from) !== "VAEDecode" ? `, images from ${g.label(from)}` : "";
  return `${g.label(c.node)} (${TIER_WORDS[c.tier]}${via})`;
}

function refuseNone(g: WorkflowGraph, finals: string[]): never {
  const ends = g.ids.filter((id) => g.consumers(id).length === 0 && finals.some((f) => g.ancestors(id).has(f)));
  const elsewhere = g.ids.filter((id) => !ends.includes(id) && (g.isOutputNode(id) === true || OUTPUT_CLASS.test(g.classType(id))));
  const list = (ids: string[]): string =>
    ids
      .slice(0, 8)
      .map((id) => g.label(id))
      .join(", ");
  const example = elsewhere[0] ?? ends.find((id) => !/VAE|Latent/i.test(g.classType(id)));
  const atEnd = ends.length > 0 ? ` (nodes at the end of its branch: ${list(ends)})` : "";
  const other = elsewhere.length > 0 ? ` (output nodes elsewhere in the graph: ${list(elsewhere)})` : "";
  throw new PickrankError(
    "BAD_INPUT",
    `Expected a node that saves or previews the images of ${finals.map((s) => g.label(s)).join(", ")} (SaveImage, PreviewImage, ` +
      `SaveImageWebsocket or a custom saver) downstream of it but found none${atEnd}${other}; ` +
      `add one after its VAEDecode, or name it with ${howToName("output", example)}`,
    { details: { parameter: parameterOf("output"), nodes: [...ends, ...elsewhere] } },
  );
}

function refuseMany(g: WorkflowGraph, finals: string[], all: Candidate[], picked: Candidate[]): never {
  // The suggestion: the top tier's node furthest down the graph (the final saver, not an intermediate one).
  const deepest = [...picked].sort((a, b) => g.ancestors(b.node).size - g.ancestors(a.node).size)[0]!;
  const rest = all.filter((c) => !picked.includes(c));
  const besides = rest.length > 0 ? `; besides: ${rest.map((c) => describe(g, c)).join("; ")}` : "";
  const others = picked.filter((c) => c !== deepest).map((c) => `, or --output-node ${c.node}`);
  throw new PickrankError(
    "BAD_INPUT",
    `Workflow is ambiguous: ${picked.length} nodes ${TIER_VERBS[deepest.tier]} the images of ` +
      `${finals.map((s) => g.label(s)).join(", ")}: ` +
      `${picked.map((c) => describe(g, c)).join("; ")}${besides}. ` +
      `Name the one whose images are the candidates with ${howToName("output", deepest.node)}${others.join("")}`,
    { details: { parameter: parameterOf("output"), outputs: all.map((c) => c.node) } },
  );
}

/** The output nodes whose images are the candidates: the named ones, or the one saver (else preview) downstream. */
export function discoverOutputs(g: WorkflowGraph, finals: string[], nodes: NodeOverrides): OutputNode[] {
  const named = asList(nodes.output);
  if (named !== undefined) {
    const suggest = candidates(g, finals).map((c) => c.node);
    return named.map((s) => {
      const id = resolveNode(g, "output", s, suggest).node;
      return { node: id, classType: g.classType(id) };
    });
  }
  const all = candidates(g, finals);
  if (all.length === 0) refuseNone(g, finals);
  const top = all[0]!.tier;
  const picked = all.filter((c) => c.tier === top);
  if (picked.length > finals.length) refuseMany(g, finals, all, picked);
  return picked.map((c) => ({ node: c.node, classType: g.classType(c.node) }));
}
