/**
 * Streaming ONNX writer. Protobuf puts every message's length before its content, so a naive writer
 * has to build the whole 4 GB model in memory. Here every message except the initializers' payloads is
 * small and encoded in memory; the payload sizes are known from the tensor shapes, so all lengths are
 * computed first and the weights are then copied tensor by tensor into the output file (or into the
 * external data file once a graph's initializers pass `externalDataThreshold`, because one protobuf
 * message cannot exceed 2 GiB).
 *
 * Files are written under a temporary name and renamed when complete, so a crash never leaves a
 * half-written file that looks whole.
 */
import { randomBytes } from "node:crypto";
import { open, rename, rm, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { PickrankError } from "@pickrank/contract";
import { AttributeType, type AttributeValue, type ModelDef, type NodeDef, type TensorSource, type ValueInfo } from "./onnx-types.ts";
import { lenFieldSize, ProtoEncoder, WIRE_LEN } from "./protobuf.ts";

// Field numbers from onnx.proto3.
const MODEL = { irVersion: 1, producerName: 2, producerVersion: 3, docString: 6, graph: 7, opsetImport: 8, metadataProps: 14 };
const GRAPH = { node: 1, name: 2, initializer: 5, input: 11, output: 12 };
const NODE = { input: 1, output: 2, name: 3, opType: 4, attribute: 5, domain: 7 };
const ATTR = { name: 1, f: 2, i: 3, s: 4, floats: 7, ints: 8, strings: 9, type: 20 };
const TENSOR = { dims: 1, dataType: 2, name: 8, rawData: 9, externalData: 13, dataLocation: 14 };
const VALUE_INFO = { name: 1, type: 2 };
const TYPE = { tensorType: 1 };
const TYPE_TENSOR = { elemType: 1, shape: 2 };
const SHAPE = { dim: 1 };
const DIM = { value: 1, param: 2 };
const STRING_ENTRY = { key: 1, value: 2 };
const OPSET = { domain: 1, version: 2 };
const DATA_LOCATION_EXTERNAL = 1;

/** Just under protobuf's 2 GiB message limit, leaving room for the graph structure. */
export const DEFAULT_EXTERNAL_DATA_THRESHOLD = 2_000_000_000;

export interface WriteOnnxOptions {
  /**
   * When the graph's initializers together exceed this many bytes, tensors of at least
   * `externalDataMinBytes` go to `<file>.data` (TensorProto data_location = EXTERNAL). 0 forces it.
   */
  externalDataThreshold?: number;
  /** Tensors smaller than this stay inline even in external mode (like onnx's size_threshold). */
  externalDataMinBytes?: number;
  /** Offsets in the data file are multiples of this, so ONNX Runtime can memory-map the weights. */
  externalDataAlignment?: number;
  /** Called after each initializer is written. */
  onTensor?: (done: number, total: number, name: string) => void;
}

export interface WriteOnnxResult {
  file: string;
  bytes: number;
  /** `tensors`: how many went to the data file; `placed`: where each one sits (name → byte offset and length). */
  externalData?: { file: string; bytes: number; tensors: number; placed: Map<string, { offset: number; length: number }> };
}

function encodeAttribute(e: ProtoEncoder, name: string, a: AttributeValue): void {
  e.string(ATTR.name, name);
  switch (a.type) {
    case "float":
      e.float(ATTR.f, a.value).int(ATTR.type, AttributeType.FLOAT);
      break;
    case "int":
      e.int(ATTR.i, a.value).int(ATTR.type, AttributeType.INT);
      break;
    case "string":
      e.string(ATTR.s, a.value).int(ATTR.type, AttributeType.STRING);
      break;
    case "floats":
      e.packedFloats(ATTR.floats, a.value).int(ATTR.type, AttributeType.FLOATS);
      break;
    case "ints":
      e.packedInts(ATTR.ints, a.value).int(ATTR.type, AttributeType.INTS);
      break;
    case "strings":
      for (const s of a.value) e.string(ATTR.strings, s);
      e.int(ATTR.type, AttributeType.STRINGS);
      break;
  }
}

export function encodeNode(n: NodeDef): Uint8Array {
  const e = new ProtoEncoder();
  for (const i of n.inputs) e.string(NODE.input, i);
  for (const o of n.outputs) e.string(NODE.output, o);
  if (n.name) e.string(NODE.name, n.name);
  e.string(NODE.opType, n.opType);
  if (n.domain) e.string(NODE.domain, n.domain);
  for (const [k, v] of Object.entries(n.attributes ?? {})) e.message(NODE.attribute, (a) => encodeAttribute(a, k, v));
  return e.finish();
}

export function encodeValueInfo(v: ValueInfo): Uint8Array {
  const e = new ProtoEncoder();
  e.string(VALUE_INFO.name, v.name);
  e.message(VALUE_INFO.type, (t) =>
    t.message(TYPE.tensorType, (tt) => {
      tt.int(TYPE_TENSOR.elemType, v.elemType);
      tt.message(TYPE_TENSOR.shape, (s) => {
        for (const d of v.shape) {
          s.message(SHAPE.dim, (dm) => (typeof d === "number" ? dm.int(DIM.value, d) : dm.string(DIM.param, d)));
        }
      });
    }),
  );
  return e.finish();
}

/** TensorProto fields other than the payload (dims, type, name; external_data entries when external). */
function encodeTensorHeader(t: TensorSource, external?: { location: string; offset: number; length: number }): Uint8Array {
  const e = new ProtoEncoder();
  for (const d of t.dims) e.int(TENSOR.dims, d);
  e.int(TENSOR.dataType, t.dataType);
  e.string(TENSOR.name, t.name);
  if (external) {
    const entry = (key: string, value: string) =>
      e.message(TENSOR.externalData, (s) => s.string(STRING_ENTRY.key, key).string(STRING_ENTRY.value, value));
    entry("location", external.location);
    entry("offset", String(external.offset));
    entry("length", String(external.length));
    e.int(TENSOR.dataLocation, DATA_LOCATION_EXTERNAL);
  }
  return e.finish();
}

/** Sequential writer with a large buffer: thousands of small protobuf pieces become few syscalls. */
class BufferedFile {
  private buf: Uint8Array;
  private used = 0;
  written = 0;

  constructor(
    private readonly fh: FileHandle,
    size = 8 << 20,
  ) {
    this.buf = new Uint8Array(size);
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (chunk.length >= this.buf.length) {
      await this.flush();
      let off = 0;
      while (off < chunk.length) {
        const { bytesWritten } = await this.fh.write(chunk, off, chunk.length - off);
        off += bytesWritten;
      }
      this.written += chunk.length;
      return;
    }
    if (this.used + chunk.length > this.buf.length) await this.flush();
    this.buf.set(chunk, this.used);
    this.used += chunk.length;
    this.written += chunk.length;
  }

  async zeros(n: number): Promise<void> {
    if (n > 0) await this.write(new Uint8Array(n));
  }

  async flush(): Promise<void> {
    let off = 0;
    while (off < this.used) {
      const { bytesWritten } = await this.fh.write(this.buf, off, this.used - off);
      off += bytesWritten;
    }
    this.used = 0;
  }
}

function externalSummary(
  file: string,
  bytes: number,
  inits: { t: TensorSource; external: { offset: number } | undefined }[],
): NonNullable<WriteOnnxResult["externalData"]> {
  const placed = new Map<string, { offset: number; length: number }>();
  for (const i of inits) if (i.external) placed.set(i.t.name, { offset: i.external.offset, length: i.t.byteLength });
  return { file, bytes, tensors: placed.size, placed };
}

function tmpName(file: string): string {
  return `${file}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
}

/** Writes `model` to `file` (and `file + ".data"` when external data is used). */
export async function writeOnnxModel(file: string, model: ModelDef, opts: WriteOnnxOptions = {}): Promise<WriteOnnxResult> {
  const threshold = opts.externalDataThreshold ?? DEFAULT_EXTERNAL_DATA_THRESHOLD;
  const minBytes = opts.externalDataMinBytes ?? 1024;
  const align = opts.externalDataAlignment ?? 4096;
  const g = model.graph;

  const names = new Set<string>();
  for (const t of g.initializers) {
    if (names.has(t.name)) throw new PickrankError("INTERNAL", `Duplicate initializer ${t.name} in graph ${g.name}`);
    names.add(t.name);
  }
  // Tensors stored in another graph's data file are references here: they count toward no threshold.
  const totalInit = g.initializers.reduce((a, t) => a + (t.stored ? 0 : t.byteLength), 0);
  const external = totalInit > threshold && g.initializers.some((t) => !t.stored && t.byteLength >= minBytes);
  const dataFile = `${file}.data`;
  const dataLocation = path.basename(dataFile);

  // Layout pass: every length is known before a byte is written.
  let dataOffset = 0;
  const inits = g.initializers.map((t) => {
    if (t.stored) {
      // Already in another graph's data file (a graph variant sharing weights): a reference, no payload.
      return { t, header: encodeTensorHeader(t, t.stored), external: undefined, msgLen: 0, stored: true };
    }
    if (external && t.byteLength >= minBytes) {
      const offset = Math.ceil(dataOffset / align) * align;
      dataOffset = offset + t.byteLength;
      const header = encodeTensorHeader(t, { location: dataLocation, offset, length: t.byteLength });
      return { t, header, external: { offset }, msgLen: header.length, stored: false };
    }
    const header = encodeTensorHeader(t);
    return { t, header, external: undefined, msgLen: header.length + lenFieldSize(TENSOR.rawData, t.byteLength), stored: false };
  });
  for (const i of inits) if (i.stored) i.msgLen = i.header.length;
  const nodes = g.nodes.map(encodeNode);
  const inputs = g.inputs.map(encodeValueInfo);
  const outputs = g.outputs.map(encodeValueInfo);
  const graphName = new TextEncoder().encode(g.name);

  let graphLen = lenFieldSize(GRAPH.name, graphName.length);
  for (const n of nodes) graphLen += lenFieldSize(GRAPH.node, n.length);
  for (const i of inits) graphLen += lenFieldSize(GRAPH.initializer, i.msgLen);
  for (const v of inputs) graphLen += lenFieldSize(GRAPH.input, v.length);
  for (const v of outputs) graphLen += lenFieldSize(GRAPH.output, v.length);

  const head = new ProtoEncoder();
  head.int(MODEL.irVersion, model.irVersion);
  head.string(MODEL.producerName, model.producerName);
  head.string(MODEL.producerVersion, model.producerVersion);
  if (model.docString) head.string(MODEL.docString, model.docString);
  for (const o of model.opsets) {
    head.message(MODEL.opsetImport, (e) => {
      if (o.domain) e.string(OPSET.domain, o.domain);
      e.int(OPSET.version, o.version);
    });
  }
  for (const [k, v] of Object.entries(model.metadata ?? {})) {
    head.message(MODEL.metadataProps, (e) => e.string(STRING_ENTRY.key, k).string(STRING_ENTRY.value, v));
  }
  head.tag(MODEL.graph, WIRE_LEN).rawVarint(graphLen);
  const headBytes = head.finish();
  const expectedTotal = headBytes.length + graphLen;
  if (!external && expectedTotal >= 2 ** 31) {
    throw new PickrankError(
      "INTERNAL",
      `Graph ${g.name} would be ${expectedTotal} bytes, over protobuf's 2 GiB limit; lower externalDataThreshold (now ${threshold})`,
    );
  }

  const tmp = tmpName(file);
  const tmpData = external ? tmpName(dataFile) : undefined;
  const fh = await open(tmp, "w");
  const dfh = tmpData ? await open(tmpData, "w") : undefined;
  let ok = false;
  try {
    const out = new BufferedFile(fh);
    const dataOut = dfh ? new BufferedFile(dfh) : undefined;
    await out.write(headBytes);
    const field = async (f: number, bytes: Uint8Array) => {
      await out.write(new ProtoEncoder(16).tag(f, WIRE_LEN).rawVarint(bytes.length).finish());
      await out.write(bytes);
    };
    for (const n of nodes) await field(GRAPH.node, n);
    await field(GRAPH.name, graphName);
    let done = 0;
    for (const i of inits) {
      await out.write(new ProtoEncoder(16).tag(GRAPH.initializer, WIRE_LEN).rawVarint(i.msgLen).finish());
      await out.write(i.header);
      if (i.stored) {
        opts.onTensor?.(++done, inits.length, i.t.name);
        continue;
      }
      let target: BufferedFile;
      if (i.external && dataOut) {
        await dataOut.zeros(i.external.offset - dataOut.written);
        target = dataOut;
      } else {
        await out.write(new ProtoEncoder(16).tag(TENSOR.rawData, WIRE_LEN).rawVarint(i.t.byteLength).finish());
        target = out;
      }
      const before = target.written;
      await i.t.write((chunk) => target.write(chunk));
      const got = target.written - before;
      if (got !== i.t.byteLength) {
        throw new PickrankError("INTERNAL", `Tensor ${i.t.name} produced ${got} bytes, expected ${i.t.byteLength}`);
      }
      opts.onTensor?.(++done, inits.length, i.t.name);
    }
    for (const v of inputs) await field(GRAPH.input, v);
    for (const v of outputs) await field(GRAPH.output, v);
    await out.flush();
    if (out.written !== expectedTotal) {
      throw new PickrankError("INTERNAL", `Wrote ${out.written} bytes to ${file}, expected ${expectedTotal}`);
    }
    if (dataOut) await dataOut.flush();
    await fh.sync();
    if (dfh) await dfh.sync();
    ok = true;
  } finally {
    await fh.close();
    if (dfh) await dfh.close();
    if (!ok) {
      await rm(tmp, { force: true });
      if (tmpData) await rm(tmpData, { force: true });
    }
  }
  // The data file first: a complete .onnx must never point at a missing or partial .data.
  if (tmpData) await rename(tmpData, dataFile);
  else await rm(dataFile, { force: true }); // a stale one from an earlier conversion would mislead
  await rename(tmp, file);
  return {
    file,
    bytes: expectedTotal,
    ...(external ? { externalData: externalSummary(dataFile, dataOffset, inits) } : {}),
  };
}
