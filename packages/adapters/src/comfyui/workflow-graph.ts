/**
 * Graph indexing for workflow detection: an API-format ComfyUI workflow with its links resolved both ways,
 * ancestors memoised, and the server's node definitions (GET /object_info) beside it when there are any.
 */

/** ComfyUI's API format: `{ id: { class_type, inputs } }`; an input is a literal or a link `[node_id, output_index]`. */
export type ComfyWorkflow = Record<string, { class_type: string; inputs: Record<string, unknown>; _meta?: { title?: string } }>;

/** One input of one node. */
export interface InputRef {
  node: string;
  input: string;
}

/**
 * One node class as ComfyUI's GET /object_info describes it (server.py `node_info`): each input is a
 * `[type, options]` tuple, where type is a type name ("STRING", "INT", "CONDITIONING", "IMAGE", a custom
 * pipe type, "*"), a list of choices (a combo, older servers) or "COMBO" with `options.options` (newer);
 * `output` lists the output types by index, `output_name` their names, and `output_node` is true for
 * nodes ComfyUI runs as outputs (SaveImage, PreviewImage, custom savers).
 */
export interface ObjectInfoClass {
  input?: { required?: Record<string, unknown>; optional?: Record<string, unknown>; hidden?: Record<string, unknown> };
  input_order?: { required?: string[]; optional?: string[] };
  output?: unknown[];
  output_name?: unknown[];
  output_is_list?: boolean[];
  output_node?: boolean;
  name?: string;
  display_name?: string;
  category?: string;
}

/** The parsed answer of GET /object_info: node class name → its definition. */
export type ObjectInfo = Record<string, ObjectInfoClass>;

/** An input definition read from /object_info: the type ("COMBO" for a list of choices) and its options. */
export interface InputSpec {
  type: string;
  opts: Record<string, unknown>;
}

/** True for a link `[node_id, output_index]` (ids are strings, or numbers in older exports). */
export function isLink(v: unknown): v is [string | number, number] {
  return Array.isArray(v) && v.length === 2 && (typeof v[0] === "string" || typeof v[0] === "number") && typeof v[1] === "number";
}

/** Whether a type name from /object_info (maybe "INT,FLOAT", a multi-type) includes `want`. */
export function typeIs(type: string | undefined, want: string): boolean {
  return type?.split(",").some((t) => t.trim() === want) ?? false;
}

/** Cuts a text for a message: at most `max` characters, JSON-quoted. */
export function quote(text: string, max = 40): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return JSON.stringify(flat.length > max ? `${flat.slice(0, max - 3)}...` : flat);
}

/** The workflow with links resolved both ways; every lookup is by node id (a string). */
export class WorkflowGraph {
  /** Node ids in the workflow's order. */
  readonly ids: string[];
  private readonly consumerMap = new Map<string, { node: string; input: string; output: number }[]>();
  private readonly ancestorMemo = new Map<string, Set<string>>();

  constructor(
    readonly wf: ComfyWorkflow,
    readonly info?: ObjectInfo,
  ) {
    this.ids = Object.keys(wf);
    for (const id of this.ids) {
      for (const [input, v] of Object.entries(wf[id]!.inputs)) {
        const src = this.source(v);
        if (src === undefined) continue;
        const list = this.consumerMap.get(src.node) ?? [];
        list.push({ node: id, input, output: src.output });
        this.consumerMap.set(src.node, list);
      }
    }
  }

  has(id: string): boolean {
    return Object.hasOwn(this.wf, id);
  }

  classType(id: string): string {
    return this.wf[id]?.class_type ?? "";
  }

  inputs(id: string): Record<string, unknown> {
    return this.wf[id]?.inputs ?? {};
  }

  value(ref: InputRef): unknown {
    return this.wf[ref.node]?.inputs[ref.input];
  }

  title(id: string): string | undefined {
    const t = this.wf[id]?._meta?.title;
    return typeof t === "string" && t.trim() !== "" ? t : undefined;
  }

  /** `KSampler #3`, with the node's title when it has its own: `CLIPTextEncode #6 "Positive"`. */
  label(id: string): string {
    const cls = this.classType(id);
    if (cls === "") return `#${id}`;
    const t = this.title(id);
    return t !== undefined && t !== cls ? `${cls} #${id} ${JSON.stringify(t)}` : `${cls} #${id}`;
  }

  /** The node (and output index) a link value points at, when that node exists. */
  source(v: unknown): { node: string; output: number } | undefined {
    if (!isLink(v)) return undefined;
    const node = String(v[0]);
    return this.has(node) ? { node, output: v[1] } : undefined;
  }

  /** The node behind one input of a node, when that input is a link. */
  link(id: string, input: string): { node: string; output: number } | undefined {
    return this.source(this.inputs(id)[input]);
  }

  /** Who reads a node's outputs: consumer node, its input name and the output index read. */
  consumers(id: string): { node: string; input: string; output: number }[] {
    return this.consumerMap.get(id) ?? [];
  }

  /** Every node a node depends on through links (cycles in a broken graph are cut). */
  ancestors(id: string): Set<string> {
    const known = this.ancestorMemo.get(id);
    if (known) return known;
    const out = new Set<string>();
    this.ancestorMemo.set(id, out);
    for (const v of Object.values(this.inputs(id))) {
      const src = this.source(v)?.node;
      if (src === undefined || out.has(src)) continue;
      out.add(src);
      for (const a of this.ancestors(src)) out.add(a);
    }
    return out;
  }

  /** The class definition from /object_info, when the server sent one for this node's class. */
  classInfo(id: string): ObjectInfoClass | undefined {
    const c = this.info?.[this.classType(id)];
    return c !== null && typeof c === "object" ? c : undefined;
  }

  /** The /object_info definition of one input: its type and options (undefined without one). */
  inputSpec(id: string, input: string): InputSpec | undefined {
    const def = this.classInfo(id)?.input;
    const raw = def?.required?.[input] ?? def?.optional?.[input];
    if (!Array.isArray(raw)) return undefined;
    const opts = raw[1] !== null && typeof raw[1] === "object" && !Array.isArray(raw[1]) ? (raw[1] as Record<string, unknown>) : {};
    if (Array.isArray(raw[0])) return { type: "COMBO", opts };
    return typeof raw[0] === "string" ? { type: raw[0], opts } : undefined;
  }

  /** The input names of a node, in /object_info's declared order when known, then the rest as written. */
  inputNames(id: string): string[] {
    const c = this.classInfo(id);
    const order = [...(c?.input_order?.required ?? []), ...(c?.input_order?.optional ?? [])];
    const declared = order.length > 0 ? order : [...Object.keys(c?.input?.required ?? {}), ...Object.keys(c?.input?.optional ?? {})];
    const present = Object.keys(this.inputs(id));
    return [...declared.filter((n) => present.includes(n)), ...present.filter((n) => !declared.includes(n))];
  }

  /** The type of one output of a node, from /object_info. */
  outputType(id: string, index: number): string | undefined {
    const t = this.classInfo(id)?.output?.[index];
    return typeof t === "string" ? t : Array.isArray(t) ? "COMBO" : undefined;
  }

  /** The name of one output of a node, from /object_info. */
  outputName(id: string, index: number): string | undefined {
    const t = this.classInfo(id)?.output_name?.[index];
    return typeof t === "string" ? t : undefined;
  }

  /** The `output_node` flag from /object_info; undefined when the server did not describe this class. */
  isOutputNode(id: string): boolean | undefined {
    const c = this.classInfo(id);
    return c === undefined ? undefined : c.output_node === true;
  }
}
