/**
 * The nodes a user names (by id or `_meta` title) where detection is ambiguous or wrong, and the words a
 * refusal uses to say how: the CLI flag first (what a command-line user can type), the API field after.
 */
import { PickrankError } from "@pickrank/contract";
import type { InputRef, WorkflowGraph } from "./workflow-graph.ts";

/**
 * Nodes the user names when detection is ambiguous or wrong. Each entry is a node id ("6"), a node's
 * `_meta` title ("Positive Prompt"), or either with an input after the last dot ("6.text_g",
 * "Positive Prompt.text"); the plural fields take one or several. The CLI fills these from
 * --prompt-node, --negative-node, --seed-node, --batch-node, --output-node and --sampler-node.
 */
export interface NodeOverrides {
  /** The sampler(s) whose images are the candidates (the last of a chain: the refiner, the hires pass). */
  sampler?: string | string[];
  /** Where the prompt goes: text encoders, string nodes, or the input that holds the text. */
  positive?: string | string[];
  negative?: string | string[];
  seed?: string | string[];
  /** The empty-latent (or loader) node that holds width, height and batch_size. */
  latent?: string;
  output?: string | string[];
  /** The loader whose ckpt_name / unet_name `params.checkpoint` sets. */
  checkpoint?: string;
}

export type OverrideField = keyof NodeOverrides;

/** The command-line flag for each override (checkpoint has none: the CLI's --checkpoint sets its value). */
export const NODE_FLAGS: Record<OverrideField, string | undefined> = {
  positive: "--prompt-node",
  negative: "--negative-node",
  seed: "--seed-node",
  latent: "--batch-node",
  output: "--output-node",
  sampler: "--sampler-node",
  checkpoint: undefined,
};

/** `--prompt-node 6 (from code: nodes.positive = "6")`: how to name a node, with an id from the user's graph. */
export function howToName(field: OverrideField, example: string | undefined): string {
  const flag = NODE_FLAGS[field];
  const ex = example === undefined ? "<id or title>" : /\s/.test(example) ? JSON.stringify(example) : example;
  const api = `nodes.${field}${example === undefined ? "" : ` = ${JSON.stringify(example)}`}`;
  return flag === undefined ? api : `${flag} ${ex} (from code: ${api})`;
}

/** The parameter name an error carries in details: the flag, which the CLI user typed or should type. */
export function parameterOf(field: OverrideField): string {
  return NODE_FLAGS[field] ?? `nodes.${field}`;
}

/** Normalises a single or plural override to a list (undefined when not given). */
export function asList(v: string | string[] | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v : [v];
}

function byTitle(g: WorkflowGraph, title: string): string[] {
  const exact = g.ids.filter((id) => g.title(id) === title);
  if (exact.length > 0) return exact;
  const lower = title.toLowerCase();
  return g.ids.filter((id) => g.title(id)?.toLowerCase() === lower);
}

function lookup(g: WorkflowGraph, field: OverrideField, name: string): string[] {
  if (g.has(name)) return [name];
  const hits = byTitle(g, name);
  if (hits.length > 1) {
    throw new PickrankError(
      "BAD_INPUT",
      `Expected one node for ${parameterOf(field)} but the title ${JSON.stringify(name)} fits ${hits.length}: ` +
        `${hits.map((id) => g.label(id)).join(", ")}; ` +
        `name it by id instead, e.g. ${howToName(field, hits[0])}`,
      { details: { parameter: parameterOf(field), nodes: hits } },
    );
  }
  return hits;
}

/**
 * Resolves one override entry to a node and, when given, an input: an id, a title, or either with
 * ".input" after it. Throws BAD_INPUT naming the nodes the user could mean (`suggest`, from their graph).
 */
export function resolveNode(g: WorkflowGraph, field: OverrideField, spec: unknown, suggest: string[]): { node: string; input?: string } {
  if (typeof spec !== "string" || spec.trim() === "") {
    throw new PickrankError("BAD_INPUT", `Expected a node id or title for ${parameterOf(field)} but received ${JSON.stringify(spec)}`, {
      details: { parameter: parameterOf(field) },
    });
  }
  const name = spec.trim();
  const whole = lookup(g, field, name);
  if (whole.length === 1) return { node: whole[0]! };
  const dot = name.lastIndexOf(".");
  if (dot > 0) {
    const head = lookup(g, field, name.slice(0, dot));
    const input = name.slice(dot + 1);
    if (head.length === 1) {
      const node = head[0]!;
      if (!Object.hasOwn(g.inputs(node), input)) {
        throw new PickrankError(
          "BAD_INPUT",
          `Expected an input of ${g.label(node)} for ${parameterOf(field)} but it has no input ${JSON.stringify(input)} ` +
            `(it has ${Object.keys(g.inputs(node)).join(", ")})`,
          { details: { parameter: parameterOf(field), node } },
        );
      }
      return { node, input };
    }
  }
  const pool = suggest.length > 0 ? suggest : g.ids;
  const list = pool.slice(0, 12);
  const more = pool.length > list.length;
  throw new PickrankError(
    "BAD_INPUT",
    `Expected a node id or title of the workflow for ${parameterOf(field)} but it has no node ${JSON.stringify(name)}; ` +
      `${suggest.length > 0 ? "nodes that fit" : "its nodes"}: ${list.map((id) => g.label(id)).join(", ")}${more ? ", …" : ""}`,
    { details: { parameter: parameterOf(field), nodes: list } },
  );
}

/**
 * Resolves the entries of a plural override to input refs: "6.text" names the input; a bare node picks
 * its inputs through `pick` (its text inputs, its seed). Throws BAD_INPUT when a node has none to set.
 */
export function resolveRefs(
  g: WorkflowGraph,
  field: OverrideField,
  specs: string[],
  pick: (id: string) => InputRef[],
  suggest: string[],
): InputRef[] {
  const out: InputRef[] = [];
  for (const s of specs) {
    const r = resolveNode(g, field, s, suggest);
    if (r.input !== undefined) {
      out.push({ node: r.node, input: r.input });
      continue;
    }
    const refs = pick(r.node);
    if (refs.length === 0) {
      const literal = Object.entries(g.inputs(r.node)).find(([, v]) => typeof v === "string" || typeof v === "number")?.[0] ?? "text";
      throw new PickrankError(
        "BAD_INPUT",
        `Expected ${parameterOf(field)} to name a node with an input pickrank can set, but ${g.label(r.node)} has none it recognises; ` +
          `name the input too, e.g. ${howToName(field, `${r.node}.${literal}`)}`,
        { details: { parameter: parameterOf(field), node: r.node } },
      );
    }
    out.push(...refs);
  }
  return dedupe(out);
}

/** Input refs without repeats, first occurrence kept. */
export function dedupe(refs: InputRef[]): InputRef[] {
  const seen = new Set<string>();
  return refs.filter((r) => {
    const k = `${r.node}\u0000${r.input}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
