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
}

export class GraphBuilder {
  readonly nodes: NodeDef[] = [];
  readonly initializers: TensorSource[] = [];
  readonly inputs: ValueInfo[] = [];
  readonly outputs: ValueInfo[] = [];
  private readonly used = new Set<string>();

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
    const outputs = Array.from({ length: count }, (_, i) => this.unique(count === 1 ? base : `${base}_out${i}`));
    const node: NodeDef = { opType, inputs, outputs, name: outputs[0]! };
    if (opts.domain) node.domain = opts.domain;
    if (opts.attrs) node.attributes = opts.attrs;
    this.nodes.push(node);
    return outputs;
  }

  /** Adds a single-output node and returns the output name. */
  node(opType: string, inputs: string[], opts: NodeOptions = {}): string {
    return this.nodeN(opType, inputs, { ...opts, outputs: 1 })[0]!;
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

  build(): GraphDef {
    return { name: this.name, nodes: this.nodes, inputs: this.inputs, outputs: this.outputs, initializers: this.initializers };
  }
}
