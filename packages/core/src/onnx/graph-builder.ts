/**
 * A small helper for writing ONNX graphs by hand: unique value names, nodes, and constant initializers
 * in the graph's compute precision. It knows nothing about CLIP; convert/clip-graph.ts uses it.
 */
import { PickrankError } from "@pickrank/contract";
import { float32ToFloat16Array } from "./float16.ts";
import {
  bytesTensor,
  DataType,
  type AttributeValue,
  type GraphDef,
  type NodeDef,
  type OpsetId,
  type TensorSource,
  type ValueInfo,
} from "./onnx-types.ts";

export interface NodeOptions {
  attrs?: Record<string, AttributeValue>;
  domain?: string;
  /** Base for the output and node names (made unique). */
  name?: string;
  /** Number of outputs (default 1). */
  outputs?: number;
  /** Indices of optional outputs left unnamed ("" in the node: ONNX's way to skip an optional output). */
  skipOutputs?: number[];
}

/** ONNX Runtime's contrib operator domain (MultiHeadAttention, SkipLayerNormalization, BiasGelu, DynamicQuantizeMatMul). */
export const MS_DOMAIN = "com.microsoft";

/** Operand of {@link GraphBuilder.residualNorm}: LayerNormalization's scale and bias, its epsilon and the norm's name. */
export interface ResidualNormSpec {
  gamma: string;
  beta: string;
  epsilon: number;
  /** Added to `input` before the residual sum (a linear layer's bias left out of its MatMul). */
  bias?: string;
  /** SkipLayerNormalization (com.microsoft) instead of Add + LayerNormalization. */
  fused: boolean;
  name: string;
}

export class GraphBuilder {
  readonly nodes: NodeDef[] = [];
  readonly initializers: TensorSource[] = [];
  readonly inputs: ValueInfo[] = [];
  readonly outputs: ValueInfo[] = [];
  private readonly used = new Set<string>();
  /** Operator set versions this graph needs, by domain ("" = ai.onnx); contrib domains are added as nodes use them. */
  private readonly opsets = new Map<string, number>();

  /** `floatType` is the compute precision: the type of `scalar()` / `floats()` constants. */
  constructor(
    readonly name: string,
    readonly floatType: typeof DataType.FLOAT | typeof DataType.FLOAT16 = DataType.FLOAT,
  ) {}

  /** A value name not used before: `base`, else `base_1`, `base_2` … */
  unique(base: string): string {
    let n = base;
    for (let i = 1; this.used.has(n); i++) n = `${base}_${i}`;
    this.used.add(n);
    return n;
  }

  input(v: ValueInfo): string {
    this.used.add(v.name);
    this.inputs.push(v);
    return v.name;
  }

  /** Declares `value` (an existing value) as graph output `v.name`, through an Identity when renamed. */
  output(value: string, v: ValueInfo): void {
    if (value !== v.name) {
      this.used.add(v.name);
      this.nodes.push({ opType: "Identity", inputs: [value], outputs: [v.name], name: `${v.name}_identity` });
    }
    this.outputs.push(v);
  }

  /** Adds a node and returns its output names. */
  nodeN(opType: string, inputs: string[], opts: NodeOptions = {}): string[] {
    const base = opts.name ?? opType.toLowerCase();
    const count = opts.outputs ?? 1;
    const skip = new Set(opts.skipOutputs ?? []);
    const outputs = Array.from({ length: count }, (_, i) => (skip.has(i) ? "" : this.unique(count === 1 ? base : `${base}_out${i}`)));
    const node: NodeDef = { opType, inputs, outputs, name: outputs.find((o) => o !== "") ?? this.unique(base) };
    if (opts.domain) {
      node.domain = opts.domain;
      this.useOpset(opts.domain, 1);
    }
    if (opts.attrs) node.attributes = opts.attrs;
    this.nodes.push(node);
    return outputs;
  }

  /** Adds a single-output node and returns the output name. */
  node(opType: string, inputs: string[], opts: NodeOptions = {}): string {
    return this.nodeN(opType, inputs, { ...opts, outputs: 1 })[0]!;
  }

  /**
   * Records that the graph needs operator set `version` (at least) of `domain`; nodeN calls it for every
   * node outside the default domain, so a graph with a com.microsoft node imports com.microsoft.
   */
  useOpset(domain: string, version: number): void {
    this.opsets.set(domain, Math.max(version, this.opsets.get(domain) ?? 0));
  }

  /** The model's opset_import: ai.onnx at `onnxVersion`, then every other domain the nodes use. */
  opsetImports(onnxVersion: number): OpsetId[] {
    const others = [...this.opsets].filter(([d]) => d !== "").map(([domain, version]) => ({ domain, version }));
    return [{ domain: "", version: Math.max(onnxVersion, this.opsets.get("") ?? 0) }, ...others];
  }

  /**
   * A residual sum followed by the next layer norm, the pair every pre-LN transformer layer ends with:
   * `sum = input (+ bias) + skip`, `normed = LayerNormalization(sum)` over the last axis. Fused, it is one
   * com.microsoft SkipLayerNormalization node (outputs 0 = normed and 3 = input_skip_bias_sum; mean and
   * inv_std_var skipped); unfused, Add (+ Add) and LayerNormalization, the same arithmetic.
   * Returns the names of both values.
   */
  residualNorm(input: string, skip: string, spec: ResidualNormSpec): { sum: string; normed: string } {
    const eps = { epsilon: { type: "float" as const, value: spec.epsilon } };
    if (spec.fused) {
      const ins = [input, skip, spec.gamma, spec.beta, ...(spec.bias ? [spec.bias] : [])];
      const out = this.nodeN("SkipLayerNormalization", ins, {
        domain: MS_DOMAIN,
        attrs: eps,
        name: spec.name,
        outputs: 4,
        skipOutputs: [1, 2],
      });
      return { normed: out[0]!, sum: out[3]! };
    }
    const biased = spec.bias ? this.node("Add", [input, spec.bias], { name: `${spec.name}/bias` }) : input;
    const sum = this.node("Add", [skip, biased], { name: `${spec.name}/residual` });
    const axis = { axis: { type: "int" as const, value: -1 } };
    return { sum, normed: this.node("LayerNormalization", [sum, spec.gamma, spec.beta], { attrs: { ...axis, ...eps }, name: spec.name }) };
  }

  initializer(t: TensorSource): string {
    if (this.used.has(t.name)) {
      throw new PickrankError("INTERNAL", `Expected a new initializer name in graph ${this.name} but ${t.name} is already used`);
    }
    this.used.add(t.name);
    this.initializers.push(t);
    return t.name;
  }

  /** For constants whose name came from unique() (already reserved). */
  private constant(t: TensorSource): string {
    this.initializers.push(t);
    return t.name;
  }

  /** int64 constant (shapes, axes, indices). */
  int64s(name: string, values: number[], dims: number[] = [values.length]): string {
    const data = new BigInt64Array(values.map((v) => BigInt(v)));
    return this.constant(bytesTensor(this.unique(name), DataType.INT64, dims, new Uint8Array(data.buffer)));
  }

  /** Float constant in the compute precision. */
  floats(name: string, values: Float32Array | number[], dims: number[]): string {
    const f = values instanceof Float32Array ? values : Float32Array.from(values);
    const data =
      this.floatType === DataType.FLOAT16
        ? new Uint8Array(float32ToFloat16Array(f).buffer)
        : new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
    return this.constant(bytesTensor(this.unique(name), this.floatType, dims, data));
  }

  /** Scalar float constant in the compute precision. */
  scalar(name: string, value: number): string {
    return this.floats(name, [value], []);
  }

  /** The graph, with the opset imports its nodes need at ai.onnx version `onnxVersion` (default 17). */
  build(onnxVersion = 17): GraphDef {
    const { name, nodes, inputs, outputs, initializers } = this;
    return { name, nodes, inputs, outputs, initializers, opsetImports: this.opsetImports(onnxVersion) };
  }
}
