/**
 * Our ONNX writer without the CLIP graphs: protobuf encoding, half-float conversion, the streaming
 * model writer (lengths computed up front, external data with aligned offsets, temp name + rename).
 * A small protobuf decoder here reads the files back independently of the writer.
 */
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { f16BitsToF32Bits, fromFloat16Bits, toFloat16Bits } from "../src/onnx/float16.ts";
import { GraphBuilder } from "../src/onnx/graph-builder.ts";
import { writeOnnxModel } from "../src/onnx/model-writer.ts";
import { attr, DataType, type ModelDef, type TensorSource } from "../src/onnx/onnx-types.ts";
import { lenFieldSize, ProtoEncoder, varintSize } from "../src/onnx/protobuf.ts";
import { openSession } from "../src/runtime/ort.ts";
import { decode, str } from "./onnx-decode.ts";

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-onnx-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A tensor whose bytes arrive in several chunks, like a streamed weight. */
function chunkedTensor(name: string, values: Float32Array, dims: number[], chunk = 3): TensorSource {
  return {
    name,
    dataType: DataType.FLOAT,
    dims,
    byteLength: values.byteLength,
    async write(sink) {
      for (let i = 0; i < values.length; i += chunk) await sink(new Uint8Array(values.slice(i, i + chunk).buffer));
    },
  };
}

/** y = x · W + b with W [4, 3] streamed in chunks. */
function smallModel(
  w: TensorSource = chunkedTensor(
    "W",
    Float32Array.from({ length: 12 }, (_, i) => i - 5),
    [4, 3],
  ),
): ModelDef {
  const g = new GraphBuilder("small");
  const x = g.input({ name: "x", elemType: DataType.FLOAT, shape: ["batch", 4] });
  const wn = g.initializer(w);
  const b = g.floats("b", [0.5, -1, 2], [3]);
  const y = g.node("Add", [g.node("MatMul", [x, wn]), b]);
  g.output(y, { name: "y", elemType: DataType.FLOAT, shape: ["batch", 3] });
  return { irVersion: 8, opsets: [{ domain: "", version: 17 }], producerName: "test", producerVersion: "0", graph: g.build() };
}

async function runSmall(file: string): Promise<Float32Array> {
  const s = await openSession(file, "cpu");
  const r = await s.run({ x: { type: "float32", data: Float32Array.from([1, 2, 3, 4, -1, 0, 1, 0]), dims: [2, 4] } });
  await s.release();
  return r.y!.data as Float32Array;
}
// W[k][j] = 3k + j − 5; y[j] = Σ_k x[k] W[k][j] + b[j]
const EXPECTED = [
  1 * -5 + 2 * -2 + 3 * 1 + 4 * 4 + 0.5,
  1 * -4 + 2 * -1 + 3 * 2 + 4 * 5 - 1,
  1 * -3 + 2 * 0 + 3 * 3 + 4 * 6 + 2,
  -1 * -5 + 1 * 1 + 0.5,
  -1 * -4 + 1 * 2 - 1,
  -1 * -3 + 1 * 3 + 2,
];

describe("protobuf encoder", () => {
  it("encodes varints, negatives as 10-byte two's complement, and knows their sizes", () => {
    expect([...new ProtoEncoder().rawVarint(300).finish()]).toEqual([0xac, 0x02]);
    expect([...new ProtoEncoder().rawVarint(-1).finish()]).toEqual([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    expect([...new ProtoEncoder().rawVarint(2 ** 35).finish()]).toEqual([0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
    for (const v of [0, 1, 127, 128, 16383, 16384, 2 ** 31, 2 ** 35, 3_900_000_000, -1]) {
      expect(varintSize(v)).toBe(new ProtoEncoder().rawVarint(v).finish().length);
    }
    expect(lenFieldSize(9, 4_000_000_000)).toBe(1 + 5 + 4_000_000_000);
    expect([...new ProtoEncoder().string(1, "ab").finish()]).toEqual([0x0a, 2, 0x61, 0x62]);
  });
});

describe("float16", () => {
  it("rounds f32 to f16 to nearest even, with subnormals, overflow and NaN", () => {
    expect(toFloat16Bits(1)).toBe(0x3c00);
    expect(toFloat16Bits(-2)).toBe(0xc000);
    expect(toFloat16Bits(65504)).toBe(0x7bff);
    expect(toFloat16Bits(65520)).toBe(0x7c00); // halfway to the next → rounds up to inf
    expect(toFloat16Bits(1e6)).toBe(0x7c00);
    expect(toFloat16Bits(2 ** -24)).toBe(0x0001);
    expect(toFloat16Bits(2 ** -25)).toBe(0x0000); // tie → even (0)
    expect(toFloat16Bits(3 * 2 ** -25)).toBe(0x0002); // tie → even (2)
    expect(toFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie → even
    expect(toFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(toFloat16Bits(2 ** -14)).toBe(0x0400); // smallest normal
    expect(toFloat16Bits(1023 * 2 ** -24)).toBe(0x03ff); // largest subnormal
    expect(toFloat16Bits(Number.NaN) & 0x7c00).toBe(0x7c00);
    expect(Number.isNaN(fromFloat16Bits(0x7e00))).toBe(true);
  });

  it("round-trips every finite half exactly", () => {
    const bad: number[] = [];
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) continue; // NaN payloads
      if (toFloat16Bits(fromFloat16Bits(h)) !== h) bad.push(h);
    }
    expect(bad).toEqual([]);
    expect(f16BitsToF32Bits(0x0001)).toBe(new Uint32Array(Float32Array.of(2 ** -24).buffer)[0]);
  });
});

describe("writeOnnxModel", () => {
  it("writes a model ORT runs, with weights streamed in chunks", async () => {
    const file = path.join(tmp, "small.onnx");
    const res = await writeOnnxModel(file, smallModel());
    expect(res.externalData).toBeUndefined();
    expect(Array.from(await runSmall(file))).toEqual(EXPECTED);
    const bytes = new Uint8Array(await readFile(file));
    expect(res.bytes).toBe(bytes.length);
    const model = decode(bytes);
    expect(model.get(1)).toEqual([8n]); // ir_version
    const opset = decode(model.get(8)![0] as Uint8Array);
    expect(opset.get(2)).toEqual([17n]);
    const graph = decode(model.get(7)![0] as Uint8Array);
    const w = graph
      .get(5)!
      .map((t) => decode(t as Uint8Array))
      .find((t) => str(t.get(8)![0]) === "W")!;
    expect(w.get(1)).toEqual([4n, 3n]); // dims
    expect(w.get(2)).toEqual([1n]); // FLOAT
    expect(Array.from(new Float32Array((w.get(9)![0] as Uint8Array).slice().buffer))).toEqual(Array.from({ length: 12 }, (_, i) => i - 5));
    expect((await readdir(tmp)).filter((f) => f.includes(".tmp-"))).toEqual([]);
  });

  it("writes external data with aligned offsets when over the threshold, and ORT loads it", async () => {
    const file = path.join(tmp, "ext.onnx");
    const big = chunkedTensor(
      "W",
      Float32Array.from({ length: 12 }, (_, i) => i - 5),
      [4, 3],
    );
    const res = await writeOnnxModel(file, smallModel(big), {
      externalDataThreshold: 0,
      externalDataMinBytes: 0,
      externalDataAlignment: 4096,
    });
    expect(res.externalData).toMatchObject({ file: `${file}.data`, tensors: 2 });
    expect(Array.from(await runSmall(file))).toEqual(EXPECTED);
    const graph = decode(decode(new Uint8Array(await readFile(file))).get(7)![0] as Uint8Array);
    const data = new Uint8Array(await readFile(`${file}.data`));
    for (const raw of graph.get(5)!) {
      const t = decode(raw as Uint8Array);
      expect(t.get(14)).toEqual([1n]); // data_location = EXTERNAL
      expect(t.get(9)).toBeUndefined(); // no raw_data
      const entries = Object.fromEntries(
        t
          .get(13)!
          .map((e) => decode(e as Uint8Array))
          .map((e) => [str(e.get(1)![0]), str(e.get(2)![0])]),
      );
      expect(entries.location).toBe("ext.onnx.data");
      expect(Number(entries.offset) % 4096).toBe(0);
      const slice = data.subarray(Number(entries.offset), Number(entries.offset) + Number(entries.length));
      if (str(t.get(8)![0]) === "W")
        expect(Array.from(new Float32Array(slice.slice().buffer))).toEqual(Array.from({ length: 12 }, (_, i) => i - 5));
    }
  });

  it("leaves no file (and no temp file) when a tensor fails midway", async () => {
    const file = path.join(tmp, "fail.onnx");
    const failing: TensorSource = {
      name: "W",
      dataType: DataType.FLOAT,
      dims: [4, 3],
      byteLength: 48,
      async write(sink) {
        await sink(new Uint8Array(16));
        throw new Error("disk on fire");
      },
    };
    await expect(writeOnnxModel(file, smallModel(failing))).rejects.toThrow("disk on fire");
    expect((await readdir(tmp)).filter((f) => f.startsWith("fail.onnx"))).toEqual([]);
  });

  it("refuses a tensor that produces the wrong number of bytes", async () => {
    const short: TensorSource = {
      name: "W",
      dataType: DataType.FLOAT,
      dims: [4, 3],
      byteLength: 48,
      write: (sink) => sink(new Uint8Array(40)),
    };
    await expect(writeOnnxModel(path.join(tmp, "short.onnx"), smallModel(short))).rejects.toMatchObject({
      code: "INTERNAL",
      message: "Tensor W produced 40 bytes, expected 48",
    });
  });

  it("encodes every attribute kind ORT reads back (Transpose perm, Softmax axis -1, Cast to, Concat)", async () => {
    const g = new GraphBuilder("attrs");
    const x = g.input({ name: "x", elemType: DataType.FLOAT, shape: [2, 3] });
    const t = g.node("Transpose", [x], { attrs: { perm: attr.ints([1, 0]) } });
    const s = g.node("Softmax", [t], { attrs: { axis: attr.int(-1) } });
    const c = g.node("Cast", [s], { attrs: { to: attr.int(DataType.FLOAT16) } });
    const back = g.node("Cast", [c], { attrs: { to: attr.int(DataType.FLOAT) } });
    const ln = g.node("LayerNormalization", [back, g.floats("scale", [1, 1], [2]), g.floats("bias", [0, 0], [2])], {
      attrs: { axis: attr.int(-1), epsilon: attr.float(1e-5) },
    });
    g.output(ln, { name: "y", elemType: DataType.FLOAT, shape: [3, 2] });
    const file = path.join(tmp, "attrs.onnx");
    await writeOnnxModel(file, {
      irVersion: 8,
      opsets: [{ domain: "", version: 17 }],
      producerName: "t",
      producerVersion: "0",
      graph: g.build(),
    });
    const sess = await openSession(file, "cpu");
    const r = await sess.run({ x: { type: "float32", data: Float32Array.from([0, 1, 2, 10, 11, 12]), dims: [2, 3] } });
    expect(r.y!.dims).toEqual([3, 2]);
    // Each row of softmax over 2 values a, b with b − a = 10 → layer norm gives ≈ [−1, 1].
    for (let i = 0; i < 3; i++) {
      expect(r.y!.data[2 * i]).toBeCloseTo(-1, 3);
      expect(r.y!.data[2 * i + 1]).toBeCloseTo(1, 3);
    }
    await sess.release();
  });
});
