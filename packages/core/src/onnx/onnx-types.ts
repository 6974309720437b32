/**
 * The in-memory description of an ONNX model that our writer serializes: nodes, small attributes and
 * value infos are plain objects; initializers are `TensorSource`s that know their byte length up front
 * and produce their bytes only when the writer asks (so weights flow from the safetensors file into the
 * .onnx file tensor by tensor). Field numbers are those of onnx/onnx.proto3.
 */

import { PickrankError } from "@pickrank/contract";

/** TensorProto.DataType values we use. */
export const DataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  INT32: 6,
  INT64: 7,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  BFLOAT16: 16,
} as const;
export type DataType = (typeof DataType)[keyof typeof DataType];

export function dataTypeSize(t: DataType): number {
  switch (t) {
    case DataType.UINT8:
    case DataType.INT8:
    case DataType.BOOL:
      return 1;
    case DataType.FLOAT16:
    case DataType.BFLOAT16:
      return 2;
    case DataType.FLOAT:
    case DataType.INT32:
      return 4;
    case DataType.INT64:
    case DataType.DOUBLE:
      return 8;
  }
}

/** AttributeProto.AttributeType values. */
export const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7, STRINGS: 8 } as const;

export type AttributeValue =
  | { type: "float"; value: number }
  | { type: "int"; value: number }
  | { type: "string"; value: string }
  | { type: "floats"; value: number[] }
  | { type: "ints"; value: number[] }
  | { type: "strings"; value: string[] };

/** Attribute constructors: `attr.int(1)` reads better than an object literal at every call site. */
export const attr = {
  float: (value: number): AttributeValue => ({ type: "float", value }),
  int: (value: number): AttributeValue => ({ type: "int", value }),
  string: (value: string): AttributeValue => ({ type: "string", value }),
  floats: (value: number[]): AttributeValue => ({ type: "floats", value }),
  ints: (value: number[]): AttributeValue => ({ type: "ints", value }),
  strings: (value: string[]): AttributeValue => ({ type: "strings", value }),
};

export interface NodeDef {
  opType: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  /** "" (or absent) is the default ai.onnx domain; "com.microsoft" for ORT contrib ops. */
  domain?: string;
  attributes?: Record<string, AttributeValue>;
}

/** A tensor shape dimension: a fixed size or a symbolic name such as "batch". */
export type Dim = number | string;

export interface ValueInfo {
  name: string;
  elemType: DataType;
  shape: Dim[];
}

/**
 * An initializer whose bytes are produced on demand. `write` must hand exactly `byteLength` bytes
 * (little-endian, row-major) to `sink`, in order, in as many chunks as it likes; it may await the sink.
 */
export interface TensorSource {
  name: string;
  dataType: DataType;
  dims: number[];
  byteLength: number;
  /** Position of the tensor's source in the checkpoint, to write tensors in reading order (default: by name). */
  sourceOffset?: number;
  /** Already stored in an external data file beside the graph: referenced there, no bytes written again. */
  stored?: { location: string; offset: number; length: number };
  write(sink: (chunk: Uint8Array) => Promise<void>): Promise<void>;
}

export interface GraphDef {
  name: string;
  nodes: NodeDef[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers: TensorSource[];
  /** The opset imports the graph's nodes need (GraphBuilder.build fills it); the model writer takes ModelDef.opsets. */
  opsetImports?: OpsetId[];
}

export interface OpsetId {
  domain: string;
  version: number;
}

export interface ModelDef {
  irVersion: number;
  opsets: OpsetId[];
  producerName: string;
  producerVersion: string;
  docString?: string;
  metadata?: Record<string, string>;
  graph: GraphDef;
}

/** An initializer backed by bytes already in memory (small constants, test tensors). */
export function bytesTensor(name: string, dataType: DataType, dims: number[], data: Uint8Array): TensorSource {
  const expected = dims.reduce((a, b) => a * b, 1) * dataTypeSize(dataType);
  if (expected !== data.byteLength) {
    const shape = `[${dims.join(",")}]`;
    throw new PickrankError("INTERNAL", `Expected ${expected} bytes for tensor ${name} of dims ${shape} but received ${data.byteLength}`);
  }
  return { name, dataType, dims, byteLength: data.byteLength, write: (sink) => sink(data) };
}
