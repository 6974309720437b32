/**
 * A small protobuf decoder for the tests: reads ONNX files back independently of our writer (field
 * numbers from onnx.proto3), and counts the op types of a graph, such as the one ONNX Runtime writes
 * after its optimizations (session option optimizedModelFilePath).
 */
import { readFile } from "node:fs/promises";

/** field number → values (varints as bigint, length-delimited as bytes, fixed32 as number). */
export type Fields = Map<number, (bigint | Uint8Array | number)[]>;
export function decode(buf: Uint8Array): Fields {
  const out: Fields = new Map();
  let pos = 0;
  const varint = (): bigint => {
    let r = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[pos++]!;
      r |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return r;
      shift += 7n;
    }
  };
  while (pos < buf.length) {
    const key = Number(varint());
    const field = key >>> 3;
    const wire = key & 7;
    let v: bigint | Uint8Array | number;
    if (wire === 0) v = varint();
    else if (wire === 2) {
      const len = Number(varint());
      v = buf.subarray(pos, pos + len);
      pos += len;
    } else if (wire === 5) {
      v = new DataView(buf.buffer, buf.byteOffset + pos, 4).getFloat32(0, true);
      pos += 4;
    } else if (wire === 1) {
      v = Number(new DataView(buf.buffer, buf.byteOffset + pos, 8).getFloat64(0, true));
      pos += 8;
    } else throw new Error(`unexpected wire type ${wire}`);
    if (pos > buf.length) throw new Error("message overruns its buffer");
    const list = out.get(field) ?? [];
    list.push(v);
    out.set(field, list);
  }
  return out;
}
export const str = (v: unknown) => new TextDecoder().decode(v as Uint8Array);

/** Op type → node count of the main graph of an ONNX model file ("domain:Op" outside ai.onnx). */
export async function countOpTypes(file: string): Promise<Record<string, number>> {
  const model = decode(new Uint8Array(await readFile(file)));
  const graph = decode(model.get(7)![0] as Uint8Array);
  const counts: Record<string, number> = {};
  for (const raw of graph.get(1) ?? []) {
    const node = decode(raw as Uint8Array);
    const domain = node.get(7) ? str(node.get(7)![0]) : "";
    const op = (domain && domain !== "ai.onnx" ? `${domain}:` : "") + str(node.get(4)![0]);
    counts[op] = (counts[op] ?? 0) + 1;
  }
  return counts;
}

/** The opset imports of an ONNX model file: domain ("" = ai.onnx) → version. */
export async function opsetImports(file: string): Promise<Record<string, number>> {
  const model = decode(new Uint8Array(await readFile(file)));
  const out: Record<string, number> = {};
  for (const raw of model.get(8) ?? []) {
    const o = decode(raw as Uint8Array);
    out[o.get(1) ? str(o.get(1)![0]) : ""] = Number(o.get(2)![0]);
  }
  return out;
}
