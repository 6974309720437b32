/**
 * Where the prompt (or negative prompt) is written. Samplers of one chain often share one prompt (base +
 * refiner, hires fix): then every text that feeds them gets it. When the texts differ today (an inpaint
 * pass with its own region prompt, regional prompts combined), only the first pass's prompt is written,
 * and when the first pass itself combines different texts, detection asks instead of overwriting them.
 */
import { PickrankError } from "@pickrank/contract";
import { quote, type InputRef, type WorkflowGraph } from "./workflow-graph.ts";
import { asList, dedupe, howToName, parameterOf, resolveRefs, type NodeOverrides } from "./workflow-nodes.ts";
import type { SamplerChain } from "./workflow-samplers.ts";
import {
  encoderTextInputs,
  isEncoder,
  pickStringInput,
  samplerEncoders,
  textOf,
  traceText,
  sameText,
  type Encoder,
  type Polarity,
} from "./workflow-text.ts";

/** Write targets of one polarity and what detection left alone (for the user to read). */
export interface PromptTargets {
  refs: InputRef[];
  notes: string[];
}

const FIELD = { positive: "positive", negative: "negative" } as const;

/** The text refs a bare node id stands for: an encoder's text inputs, else its string input of that polarity. */
export function textRefsOf(g: WorkflowGraph, id: string, polarity: Polarity): InputRef[] {
  const inputs = isEncoder(g, id)
    ? encoderTextInputs(g, id)
    : [pickStringInput(g, id, 0, polarity)].filter((n): n is string => n !== undefined);
  return dedupe(inputs.flatMap((input) => traceText(g, { node: id, input }, polarity)));
}

function uniqueEncoders(list: Encoder[]): Encoder[] {
  const seen = new Set<string>();
  return list.filter((e) => !seen.has(e.node) && seen.add(e.node));
}

function describeEncoder(g: WorkflowGraph, e: Encoder): string {
  const text = e.refs.map((r) => textOf(g, r)).find((t) => t !== "");
  return `${g.label(e.node)}${text === undefined ? "" : ` with text ${quote(text)}`}`;
}

/** Text nodes a user might name for this polarity, for "nodes that fit" lists. */
function suggestions(g: WorkflowGraph, chain: SamplerChain, polarity: Polarity): string[] {
  const fromChain = chain.samplers.flatMap((s) => samplerEncoders(g, s, polarity).flatMap((e) => [e.node, ...e.refs.map((r) => r.node)]));
  return [...new Set([...fromChain, ...g.ids.filter((id) => isEncoder(g, id))])];
}

function refuseMixed(g: WorkflowGraph, chain: SamplerChain, roots: Encoder[]): never {
  const where = chain.roots.map((s) => g.label(s)).join(", ");
  const ids = roots.map((e) => e.node);
  throw new PickrankError(
    "BAD_INPUT",
    `Workflow is ambiguous: the positive conditioning of ${where} combines ${roots.length} prompts with different text: ` +
      `${roots.map((e) => describeEncoder(g, e)).join(", ")}. pickrank will not overwrite them all with one prompt. ` +
      `Name the one your prompt replaces with ${howToName("positive", ids[0])}${
        ids.length > 1
          ? `, or ${ids
              .slice(1)
              .map((id) => `--prompt-node ${id}`)
              .join(", or ")}`
          : ""
      }`,
    { details: { parameter: parameterOf("positive"), nodes: ids } },
  );
}

/**
 * Finds the inputs the prompt of one polarity is written into. Named nodes win; otherwise the texts
 * feeding the chain's first sampler(s), plus later passes' texts that hold the same words today.
 * Throws BAD_INPUT when no text is found (positive) or the first pass mixes different texts (positive).
 */
export function promptTargets(g: WorkflowGraph, chain: SamplerChain, polarity: Polarity, nodes: NodeOverrides): PromptTargets {
  const named = asList(nodes[FIELD[polarity]]);
  if (named !== undefined) {
    return {
      refs: resolveRefs(g, FIELD[polarity], named, (id) => textRefsOf(g, id, polarity), suggestions(g, chain, polarity)),
      notes: [],
    };
  }
  const all = uniqueEncoders(chain.samplers.flatMap((s) => samplerEncoders(g, s, polarity))).filter((e) => e.refs.length > 0);
  const roots = uniqueEncoders(chain.roots.flatMap((s) => samplerEncoders(g, s, polarity))).filter((e) => e.refs.length > 0);
  const agree = (list: Encoder[]): boolean => list.every((a) => list.every((b) => sameText(g, a, b)));
  if (agree(all)) return { refs: dedupe(all.flatMap((e) => e.refs)), notes: [] };
  if (!agree(roots)) {
    if (polarity === "positive") refuseMixed(g, chain, roots);
    const ids = roots.map((e) => e.node);
    return {
      refs: [],
      notes: [
        `negative texts differ (${roots.map((e) => describeEncoder(g, e)).join(", ")}); name one with ${howToName("negative", ids[0])}`,
      ],
    };
  }
  const chosen = all.filter((e) => roots.some((r) => r.node === e.node) || roots.every((r) => sameText(g, r, e)));
  const kept = all.filter((e) => !chosen.includes(e));
  const flag = polarity === "positive" ? "--prompt-node" : "--negative-node";
  const notes = kept.map((e) => {
    const passes = chain.samplers.filter((s) => samplerEncoders(g, s, polarity).some((x) => x.node === e.node)).map((s) => g.label(s));
    return (
      `${describeEncoder(g, e)} keeps its own ${polarity} text: it feeds ${passes.join(", ")}, a later pass with a different prompt ` +
      `(to write it too: ${[...chosen, e].map((x) => `${flag} ${x.node}`).join(" ")})`
    );
  });
  return { refs: dedupe(chosen.flatMap((e) => e.refs)), notes };
}
