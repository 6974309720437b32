/**
 * Checks of ComfyUI workflows against /object_info, for the node pack's example workflow (UI format)
 * and the ComfyUI recipe (API format): classes exist, required inputs are there, links join an output
 * and an input of the same type, widget values have their input's type and stay in their combo. The UI
 * format's widgets_values are read as ComfyUI's frontend reads them: one value per widget input, in
 * input order, plus the control_after_generate value after a widget that has one.
 */

/** One class of /object_info (server.py node_info). */
export interface NodeInfo {
  input: { required?: Record<string, unknown[]>; optional?: Record<string, unknown[]> };
  input_order: { required?: string[]; optional?: string[] };
  output: string[];
}

/** An API-format prompt: node id → class_type and inputs (a link is [node id, output slot]). */
export type ApiWorkflow = Record<string, { class_type: string; inputs: Record<string, unknown>; _meta?: { title?: string } }>;

/** A UI-format workflow (the frontend's saved graph), the fields read here. */
export interface UiWorkflow {
  nodes: {
    id: number;
    type: string;
    title?: string;
    inputs?: { name: string; type: string; link: number | null }[];
    outputs?: { name: string; type: string; links: number[] | null }[];
    widgets_values?: unknown[];
  }[];
  links: [number, number, number, number, number, string][];
}

const WIDGET_TYPES = new Set(["INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"]);

function inputSpec(info: NodeInfo, name: string): unknown[] | undefined {
  return info.input.required?.[name] ?? info.input.optional?.[name];
}

function isWidget(spec: unknown[]): boolean {
  return Array.isArray(spec[0]) || WIDGET_TYPES.has(spec[0] as string);
}

function checkWidget(where: string, spec: unknown[], value: unknown, problems: string[]): void {
  const options = (spec[1] ?? {}) as { min?: number; max?: number; options?: unknown[] };
  const choices = Array.isArray(spec[0]) ? spec[0] : spec[0] === "COMBO" ? options.options : undefined;
  if (choices) {
    if (!choices.includes(value) && !where.endsWith(".ckpt_name")) problems.push(`${where}: ${JSON.stringify(value)} is not a choice`);
    return;
  }
  const type = spec[0] as string;
  const ok =
    type === "STRING"
      ? typeof value === "string"
      : type === "BOOLEAN"
        ? typeof value === "boolean"
        : typeof value === "number" && (type === "FLOAT" || Number.isInteger(value));
  if (!ok) problems.push(`${where}: ${JSON.stringify(value)} is not of type ${type}`);
  if (typeof value === "number" && options.min !== undefined && value < options.min) problems.push(`${where}: below min ${options.min}`);
  if (typeof value === "number" && options.max !== undefined && value > options.max) problems.push(`${where}: above max ${options.max}`);
}

/** Problems of an API-format workflow against `objectInfo` (empty when it would validate). */
export function apiWorkflowProblems(wf: ApiWorkflow, objectInfo: Record<string, NodeInfo>): string[] {
  const problems: string[] = [];
  for (const [id, node] of Object.entries(wf)) {
    const info = objectInfo[node.class_type];
    if (!info) {
      problems.push(`${id}: unknown class ${node.class_type}`);
      continue;
    }
    for (const name of info.input_order.required ?? []) if (!(name in node.inputs)) problems.push(`${id}.${name}: required, missing`);
    for (const [name, value] of Object.entries(node.inputs)) {
      const spec = inputSpec(info, name);
      const where = `${id}.${name}`;
      if (!spec) problems.push(`${where}: not an input of ${node.class_type}`);
      else if (Array.isArray(value)) {
        const [from, slot] = value as [string, number];
        const type = wf[from] ? objectInfo[wf[from]!.class_type]?.output[slot] : undefined;
        if (type !== spec[0]) problems.push(`${where}: linked to ${from}[${slot}] of type ${type}, expected ${String(spec[0])}`);
      } else if (!isWidget(spec)) problems.push(`${where}: ${String(spec[0])} must be linked`);
      else checkWidget(where, spec, value, problems);
    }
  }
  return problems;
}

/**
 * A UI-format workflow as the API prompt the frontend queues for it (titles in _meta), and the problems
 * of its links (an end that does not exist or has another type).
 */
export function uiToApi(ui: UiWorkflow, objectInfo: Record<string, NodeInfo>): { api: ApiWorkflow; problems: string[] } {
  const problems: string[] = [];
  const byId = new Map(ui.nodes.map((n) => [n.id, n]));
  const links = new Map(ui.links.map((l) => [l[0], l]));
  for (const [id, from, slot, to, toSlot, type] of ui.links) {
    const out = byId.get(from)?.outputs?.[slot];
    const inp = byId.get(to)?.inputs?.[toSlot];
    if (out?.type !== type || inp?.type !== type || inp.link !== id || !out.links?.includes(id)) problems.push(`link ${id}: ends disagree`);
  }
  const api: ApiWorkflow = {};
  for (const node of ui.nodes) {
    const info = objectInfo[node.type];
    if (!info) {
      problems.push(`${node.id}: unknown class ${node.type}`);
      continue;
    }
    const inputs: Record<string, unknown> = {};
    for (const inp of node.inputs ?? []) {
      const link = inp.link === null ? undefined : links.get(inp.link);
      if (link) inputs[inp.name] = [String(link[1]), link[2]];
    }
    const values = [...(node.widgets_values ?? [])];
    for (const name of [...(info.input_order.required ?? []), ...(info.input_order.optional ?? [])]) {
      const spec = inputSpec(info, name)!;
      if (!isWidget(spec)) continue;
      // A widget turned into an input keeps its place in widgets_values; the link wins.
      const value = values.shift();
      if (!(name in inputs)) inputs[name] = value;
      if ((spec[1] as { control_after_generate?: boolean } | undefined)?.control_after_generate) values.shift();
    }
    if (values.length > 0) problems.push(`${node.id}: ${values.length} widget values left over`);
    api[String(node.id)] = { class_type: node.type, inputs, ...(node.title ? { _meta: { title: node.title } } : {}) };
  }
  return { api, problems };
}
