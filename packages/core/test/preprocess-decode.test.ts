/**
 * Decoding against PIL, mode by mode: every fixture in test/data/decode is decoded here and compared
 * with what `ImageOps.exif_transpose(Image.open(f)).convert("RGB")` gave for it (pil-rgb.json, written
 * by gen-decode-fixtures.py beside it; its `reference` field names the Pillow version).
 * Lossless formats must give PIL's pixels exactly; every row must pass the preprocessing bar of
 * preprocess.test.ts (MAE ≤ 0.02 and p99 ≤ 0.1 in normalized units of the CLIP tensor).
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";
import { describe, expect, it } from "vitest";
import { decodeImage, preprocessDecoded, type DecodedImage } from "../src/preprocess/image.ts";
import { cmykToRgb, readGifFirstFrame } from "../src/preprocess/pil-convert.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const dataDir = path.join(here, "data/decode");

interface Row {
  file: string;
  mode: string;
  note: string;
  rule: "convert" | "gray16-msb";
  lossless: boolean;
  width: number;
  height: number;
  rgb: string;
}
const doc = JSON.parse(await readFile(path.join(dataDir, "pil-rgb.json"), "utf8")) as { reference: string; fixtures: Row[] };

/** Largest per-sample difference between a decoding (1–4 bands) and PIL's RGB. */
function pixelDiff(got: DecodedImage, want: Uint8Array): { max: number; count: number } {
  let max = 0;
  let count = 0;
  const n = got.width * got.height;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) {
      const band = got.channels >= 3 ? c : 0;
      const e = Math.abs((got.data[i * got.channels + band] as number) - (want[i * 3 + c] as number));
      if (e > 0) count++;
      if (e > max) max = e;
    }
  }
  return { max, count };
}

function tensorStats(a: Float32Array, b: Float32Array): { mae: number; p99: number } {
  const d = Float64Array.from(a, (v, i) => Math.abs(v - (b[i] as number))).sort();
  return { mae: d.reduce((s, v) => s + v, 0) / d.length, p99: d[Math.floor(0.99 * (d.length - 1))] as number };
}

describe(`decodeImage gives PIL's convert("RGB") for every mode (${doc.reference})`, () => {
  it("the table covers every format and the modes that went wrong", () => {
    const modes = new Set(doc.fixtures.map((r) => `${path.extname(r.file)} ${r.mode}`));
    for (const m of [".png 1", ".png L", ".png LA", ".png P", ".png RGB", ".png RGBA", ".png I;16", ".jpg L", ".jpg RGB", ".jpg CMYK"]) {
      expect(modes).toContain(m);
    }
    for (const m of [".gif P", ".webp RGB", ".webp RGBA", ".tif CMYK", ".tif RGB", ".tif I;16", ".tif P", ".avif RGB"]) {
      expect(modes).toContain(m);
    }
    expect(doc.fixtures.length).toBeGreaterThanOrEqual(45);
  });

  for (const row of doc.fixtures) {
    it(`${path.basename(row.file)} (${row.mode}: ${row.note})`, async () => {
      const want = new Uint8Array(zlib.inflateSync(Buffer.from(row.rgb, "base64")));
      const got = await decodeImage(path.join(dataDir, row.file));
      expect([got.width, got.height]).toEqual([row.width, row.height]);
      const px = pixelDiff(got, want);
      if (row.lossless) expect(px).toEqual({ max: 0, count: 0 });
      const ref = preprocessDecoded({ data: want, width: row.width, height: row.height, channels: 3 });
      const s = tensorStats(preprocessDecoded(got), ref);
      expect(s.mae).toBeLessThanOrEqual(0.02);
      expect(s.p99).toBeLessThanOrEqual(0.1);
    });
  }

  it("the CMYK case of shared/cases: K, C, white and M+Y swatches are PIL's (0,0,0), (0,255,255), white, (255,0,0)", async () => {
    const file = path.resolve(here, "../../../../shared/cases/cmyk_swatch.jpg");
    const d = await decodeImage(file);
    expect([d.width, d.height, d.channels]).toEqual([896, 224, 3]);
    const at = (x: number, y: number) => [...d.data.subarray((y * d.width + x) * 3, (y * d.width + x) * 3 + 3)];
    expect([at(112, 112), at(336, 112), at(560, 112), at(784, 112)]).toEqual([
      [0, 0, 0],
      [0, 255, 255],
      [255, 255, 255],
      [255, 0, 0],
    ]);
  });
});

describe("pil-convert: the PIL conversions ported", () => {
  it("cmykToRgb: Pillow's cmyk2rgb rounding (values from Pillow 9.4 and 12.3)", () => {
    // Image.new("CMYK", (1, 1), v).convert("RGB").getpixel((0, 0)) for each v.
    const cases: [number[], number[]][] = [
      [
        [100, 50, 200, 30],
        [137, 181, 49],
      ],
      [
        [0, 0, 0, 255],
        [0, 0, 0],
      ],
      [
        [255, 0, 0, 0],
        [0, 255, 255],
      ],
      [
        [0, 0, 0, 0],
        [255, 255, 255],
      ],
      [
        [128, 128, 128, 128],
        [63, 63, 63],
      ],
    ];
    for (const [cmyk, rgb] of cases) expect([...cmykToRgb(Uint8Array.from(cmyk), 1, 1, 4).data]).toEqual(rgb);
    // A fifth band (alpha) is dropped.
    expect([...cmykToRgb(Uint8Array.from([0, 0, 0, 0, 9, 255, 0, 0, 0, 9]), 2, 1, 5).data]).toEqual([255, 255, 255, 0, 255, 255]);
  });

  it("readGifFirstFrame: screen, frame box, palette in force and transparent index", async () => {
    const f = readGifFirstFrame(await readFile(path.join(dataDir, "gif-offset-frame.gif")));
    expect(f).toMatchObject({ screenWidth: 61, screenHeight: 45, left: 7, top: 5, width: 41, height: 31, transparentIndex: 5 });
    expect(f?.palette?.length).toBe(768);
    const local = readGifFirstFrame(await readFile(path.join(dataDir, "gif-local-palette-transparent.gif")));
    expect(local).toMatchObject({ left: 0, top: 0, transparentIndex: 0 });
    expect([...(local?.palette?.subarray(0, 3) ?? [])]).not.toEqual([0, 0, 0]);
    expect(readGifFirstFrame(new TextEncoder().encode("GIF89a"))).toBeUndefined();
    expect(readGifFirstFrame(new TextEncoder().encode("not a gif at all"))).toBeUndefined();
  });
});
