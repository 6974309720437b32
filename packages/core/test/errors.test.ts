/**
 * core throws only PickrankErrors with a code from the contract's table: a static check over
 * packages/core/src, and the calls that used to throw plain Error / RangeError, named for the call.
 */
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { PickrankError } from "@pickrank/contract";
import { SafetensorsFile } from "../src/convert/safetensors.ts";
import { GraphBuilder } from "../src/onnx/graph-builder.ts";
import { bytesTensor, DataType } from "../src/onnx/onnx-types.ts";
import { ProtoEncoder, varintSize } from "../src/onnx/protobuf.ts";
import { tinyClipDir } from "../../../test/helpers/paths.ts";

const srcDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../src");

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(PickrankError);
    return (e as PickrankError).code;
  }
  throw new Error("expected a throw");
}

describe("errors thrown by packages/core/src", () => {
  it("no source file throws a plain Error, RangeError or TypeError, or defines its own Error class", async () => {
    const files = (await readdir(srcDir, { recursive: true })).filter((f) => /\.(ts|js)$/.test(f));
    expect(files.length).toBeGreaterThan(20);
    const offenders: string[] = [];
    for (const f of files) {
      const text = await readFile(path.join(srcDir, f), "utf8");
      text.split("\n").forEach((line, i) => {
        if (/\bnew (Range|Type)?Error\(|\bextends Error\b|\bthrow Error\(/.test(line)) offenders.push(`${f}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(offenders).toEqual([]);
  });

  it("BAD CALL - GraphBuilder.initializer with a name already used is INTERNAL", () => {
    const g = new GraphBuilder("g");
    g.initializer(bytesTensor("w", DataType.FLOAT, [1], new Uint8Array(4)));
    expect(codeOf(() => g.initializer(bytesTensor("w", DataType.FLOAT, [1], new Uint8Array(4))))).toBe("INTERNAL");
  });

  it("BAD CALL - bytesTensor with bytes that do not fit the dims is INTERNAL", () => {
    expect(codeOf(() => bytesTensor("t", DataType.FLOAT, [2, 3], new Uint8Array(8)))).toBe("INTERNAL");
  });

  it("BAD CALL - varints of numbers that are not safe integers are INTERNAL", () => {
    expect(codeOf(() => varintSize(2 ** 60))).toBe("INTERNAL");
    expect(codeOf(() => new ProtoEncoder().rawVarint(1.5e300))).toBe("INTERNAL");
  });

  it("BAD CALL - SafetensorsFile.read outside a tensor, sha256 without hash: true, are INTERNAL naming the file", async () => {
    const st = await SafetensorsFile.open(path.join(tinyClipDir, "model.safetensors"));
    try {
      const e = st.entries.values().next().value!;
      await expect(st.read(e, 0, e.byteLength + 1)).rejects.toMatchObject({ code: "INTERNAL", message: expect.stringContaining(e.name) });
      await expect(st.sha256()).rejects.toMatchObject({ code: "INTERNAL", message: expect.stringContaining("model.safetensors") });
    } finally {
      await st.close();
    }
  });
});
