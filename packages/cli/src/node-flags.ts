/**
 * Flags that name nodes of a ComfyUI workflow where detection is ambiguous or wrong: --prompt-node,
 * --negative-node, --seed-node, --batch-node, --output-node and --sampler-node, each taking a node id
 * ("6"), a node's title ("Positive Prompt") or either with an input ("6.text_g"). They become the
 * ComfyUI backend's `nodes` overrides (NodeOverrides), which the detection refusals name.
 */
import type { NodeOverrides } from "@pickrank/adapters";
import { PickrankError } from "@pickrank/contract";
import type { Command } from "commander";

/** The parsed flags as commander stores them (repeatable ones collect into arrays). */
export interface NodeFlagOptions {
  promptNode?: string[];
  negativeNode?: string[];
  seedNode?: string[];
  batchNode?: string[];
  outputNode?: string[];
  samplerNode?: string[];
}

interface FlagDef {
  flag: string;
  key: keyof NodeFlagOptions;
  field: "positive" | "negative" | "seed" | "latent" | "output" | "sampler";
  help: string;
}

const FLAGS: FlagDef[] = [
  {
    flag: "--prompt-node",
    key: "promptNode",
    field: "positive",
    help: "node (id or title, or node.input) the prompt is written into; repeat for several",
  },
  {
    flag: "--negative-node",
    key: "negativeNode",
    field: "negative",
    help: "node the negative prompt (--negative) is written into; repeat for several",
  },
  {
    flag: "--seed-node",
    key: "seedNode",
    field: "seed",
    help: "node whose seed varies per candidate (a sampler or a seed node); repeat for several",
  },
  {
    flag: "--batch-node",
    key: "batchNode",
    field: "latent",
    help: "node holding batch_size, width and height (an empty latent or a loader)",
  },
  { flag: "--output-node", key: "outputNode", field: "output", help: "node whose images are the candidates (a saver or preview)" },
  { flag: "--sampler-node", key: "samplerNode", field: "sampler", help: "last sampler of the chain that makes the candidates" },
];

const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];

/** Adds the six node flags to a command (ComfyUI workflows; see the module comment). */
export function addNodeFlags(cmd: Command): Command {
  for (const f of FLAGS) cmd.option(`${f.flag} <node>`, `ComfyUI: ${f.help}`, collect);
  return cmd;
}

/**
 * The backend's node overrides from the flags, or undefined when none is given. Throws BAD_INPUT when
 * they are given for a backend other than ComfyUI, or --batch-node is repeated (one latent holds the batch).
 */
export function nodeOverridesFromFlags(opts: NodeFlagOptions, backend: string): NodeOverrides | undefined {
  const given = FLAGS.filter((f) => (opts[f.key]?.length ?? 0) > 0);
  if (given.length === 0) return undefined;
  if (backend !== "comfyui") {
    throw new PickrankError(
      "BAD_INPUT",
      `Expected ${given.map((f) => f.flag).join(", ")} only with --backend comfyui (they name nodes of a ComfyUI workflow) ` +
        `but the backend is ${backend}`,
      {
        details: { parameter: given[0]!.flag },
      },
    );
  }
  const nodes: NodeOverrides = {};
  for (const f of given) {
    const values = opts[f.key]!;
    if (f.field === "latent") {
      if (values.length > 1) {
        throw new PickrankError(
          "BAD_INPUT",
          `Expected one --batch-node (the node holding batch_size) but received ${values.length}: ` +
            values.map((v) => JSON.stringify(v)).join(", "),
          {
            details: { parameter: "--batch-node" },
          },
        );
      }
      nodes.latent = values[0]!;
    } else {
      nodes[f.field] = values.length === 1 ? values[0]! : values;
    }
  }
  return nodes;
}
