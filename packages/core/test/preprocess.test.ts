import { mkdtemp, readFile, rm, writeFile, mkdir } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PickrankError } from "@pickrank/contract";
import {
  CLIP_PREPROCESS,
  DEFAULT_MAX_PIXELS,
  PIL_MAX_IMAGE_PIXELS,
  decodeImage,
  preprocessDecoded,
  preprocessImage,
  type RawImage,
} from "../src/preprocess/image.ts";
import { defaultWasmResampler } from "../src/preprocess/resample-wasm.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const fixtures = path.resolve(repoRoot, "../shared/fixtures/pickscore-reference");
const PLANE = 224 * 224;

interface Stats {
  mae: number;
  p99: number;
  max: number;
  exact: number;
}
function compare(got: Float32Array, ref: Float32Array): Stats {
  expect(got.length).toBe(ref.length);
  const d = new Float64Array(got.length);
  let sum = 0;
  let exact = 0;
  for (let i = 0; i < got.length; i++) {
    const e = Math.abs((got[i] as number) - (ref[i] as number));
    d[i] = e;
    sum += e;
    if (e === 0) exact++;
  }
  d.sort();
  return {
    mae: sum / d.length,
    p99: d[Math.floor(0.99 * (d.length - 1))] as number,
    max: d[d.length - 1] as number,
    exact: exact / d.length,
  };
}

/** Bitwise equality of two tensors (vitest's deep equality walks 150k elements slowly). */
function expectSame(a: Float32Array, b: Float32Array): void {
  expect(a.length).toBe(b.length);
  const ba = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  const bb = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (!ba.equals(bb)) expect(compare(a, b)).toEqual({ mae: 0, p99: 0, max: 0, exact: 1 });
}

async function codeOf(p: Promise<unknown>): Promise<PickrankError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(PickrankError);
  return e as PickrankError;
}

/** A deterministic test pattern with edges and gradients (resampling differences show on both). */
function pattern(width: number, height: number, channels: 1 | 3 | 4): Uint8Array {
  const data = new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * channels;
      const edge = (x >> 3) % 2 === (y >> 3) % 2 ? 200 : 30;
      data[i] = (edge + x) & 255;
      if (channels >= 3) {
        data[i + 1] = (y * 3) & 255;
        data[i + 2] = (x * y) & 255;
      }
      if (channels === 4) data[i + 3] = (x * 5) & 255;
    }
  }
  return data;
}
const raw = (width: number, height: number, channels: 1 | 3 | 4) => ({ raw: { width, height, channels } });

/** Runs `f` and checks that its resample went through the WebAssembly SIMD kernels (not the JavaScript fallback). */
async function viaWasm<T>(f: () => Promise<T>): Promise<T> {
  const wasm = defaultWasmResampler();
  expect(wasm, "WebAssembly SIMD validates on Node 20: the kernels must be active").toBeDefined();
  const before = wasm?.stats.runs ?? 0;
  const got = await f();
  expect(wasm?.stats.runs).toBe(before + 1);
  return got;
}

describe("preprocessImage matches the reference pixel_values (transformers CLIPImageProcessor)", async () => {
  const manifest = JSON.parse(await readFile(path.join(fixtures, "MANIFEST.json"), "utf8")) as {
    images: { file: string; pixel_values: string; size: [number, number] }[];
  };
  it("has the six fixture images", () => {
    expect(manifest.images).toHaveLength(6);
  });
  for (const im of manifest.images) {
    it(`${im.file}: MAE <= 0.02 and p99 <= 0.1 (bit-exact in practice)`, async () => {
      const ref = new Float32Array((await readFile(path.join(fixtures, im.pixel_values))).buffer.slice(0));
      const got = await viaWasm(() => preprocessImage(path.join(fixtures, im.file)));
      expect(got).toBeInstanceOf(Float32Array);
      expect(got.length).toBe(3 * PLANE);
      const s = compare(got, ref);
      expect(s.mae).toBeLessThanOrEqual(0.02);
      expect(s.p99).toBeLessThanOrEqual(0.1);
      // The port reproduces torchvision's uint8 resampler and float32 normalization exactly; PNG decoding
      // is lossless so those must match to the bit. JPEG decoders may differ across builds: targets only.
      if (im.file.endsWith(".png")) expect(s.max).toBe(0);
    });
    it(`${im.file}: the PIL flavour (transformers 4 slow path) stays within one uint8 level`, async () => {
      const ref = new Float32Array((await readFile(path.join(fixtures, im.pixel_values))).buffer.slice(0));
      const img = await decodeImage(path.join(fixtures, im.file));
      const got = await viaWasm(async () => preprocessDecoded(img, CLIP_PREPROCESS, "pil"));
      const s = compare(got, ref);
      expect(s.mae).toBeLessThanOrEqual(0.001);
      expect(s.p99).toBeLessThanOrEqual(1e-6);
      expect(s.max).toBeLessThanOrEqual(0.031); // ≤ 2 levels: 2/255/0.2613
    });
  }
});

describe("preprocessImage inputs and formats", () => {
  let tmp = "";
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-pre-"));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it("path, Buffer, Uint8Array and RawImage of the same pixels give the same tensor", async () => {
    const px = pattern(300, 200, 3);
    const png = await sharp(px, raw(300, 200, 3))
      .png()
      .toBuffer();
    const file = path.join(tmp, "same.png");
    await writeFile(file, png);
    const a = await preprocessImage(file);
    expectSame(await preprocessImage(png), a);
    expectSame(await preprocessImage(new Uint8Array(png)), a);
    expectSame(await preprocessImage({ data: px, width: 300, height: 200, channels: 3 }), a);
  });

  it("alpha is dropped, not composited (RGBA RawImage and RGBA PNG equal the RGB image)", async () => {
    const rgba = pattern(160, 240, 4);
    const rgb = new Uint8Array(160 * 240 * 3);
    for (let i = 0, j = 0; i < rgba.length; i += 4) {
      rgb[j++] = rgba[i] as number;
      rgb[j++] = rgba[i + 1] as number;
      rgb[j++] = rgba[i + 2] as number;
    }
    const want = await preprocessImage({ data: rgb, width: 160, height: 240, channels: 3 });
    expectSame(await preprocessImage({ data: rgba, width: 160, height: 240, channels: 4 }), want);
    expectSame(
      await preprocessImage(
        await sharp(rgba, raw(160, 240, 4))
          .png()
          .toBuffer(),
      ),
      want,
    );
  });

  it("grayscale (1-channel RawImage, gray PNG) equals RGB with three equal channels", async () => {
    const g = pattern(250, 180, 1);
    const rgb = new Uint8Array(g.length * 3);
    g.forEach((v, i) => rgb.fill(v, i * 3, i * 3 + 3));
    const want = await preprocessImage({ data: rgb, width: 250, height: 180, channels: 3 });
    expectSame(await preprocessImage({ data: g, width: 250, height: 180, channels: 1 }), want);
    const grayPng = await sharp(g, raw(250, 180, 1))
      .toColourspace("b-w")
      .png()
      .toBuffer();
    expect((await sharp(grayPng).metadata()).channels).toBe(1);
    expectSame(await preprocessImage(grayPng), want);
    expect(want.subarray(0, PLANE)).not.toEqual(want.subarray(PLANE, 2 * PLANE)); // mean/std differ per channel
  });

  it("palette PNG decodes through its palette", async () => {
    const px = pattern(200, 200, 3);
    const pal = await sharp(px, raw(200, 200, 3))
      .png({ palette: true, colours: 16 })
      .toBuffer();
    expect((await sharp(pal).metadata()).isPalette).toBe(true);
    const decoded = await sharp(pal).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const want = await preprocessImage({ data: decoded.data, width: 200, height: 200, channels: 3 });
    expectSame(await preprocessImage(pal), want);
  });

  it("16-bit PNG (RGB and gray) is scaled to 8 bits, not clipped", async () => {
    const px = pattern(230, 260, 3);
    const want = await preprocessImage({ data: px, width: 230, height: 260, channels: 3 });
    const png16 = await sharp(px, raw(230, 260, 3))
      .toColourspace("rgb16")
      .png()
      .toBuffer();
    expect((await sharp(png16).metadata()).depth).toBe("ushort");
    const s = compare(await preprocessImage(png16), want);
    expect(s.max).toBeLessThanOrEqual(0.016); // at most one level from 16→8-bit rounding
    const g = pattern(230, 260, 1);
    const gray16 = await sharp(g, raw(230, 260, 1))
      .toColourspace("grey16")
      .png()
      .toBuffer();
    expect((await sharp(gray16).metadata()).channels).toBe(1);
    const wantGray = await preprocessImage({ data: g, width: 230, height: 260, channels: 1 });
    expect(compare(await preprocessImage(gray16), wantGray).max).toBeLessThanOrEqual(0.016);
  });

  it("EXIF orientation is applied (JPEG with orientation 6 is rotated 90° clockwise)", async () => {
    // Smooth content with one bright quadrant, so JPEG loss stays small and a wrong rotation shows.
    const px = new Uint8Array(320 * 240 * 3);
    for (let y = 0; y < 240; y++) {
      for (let x = 0; x < 320; x++) {
        const i = (y * 320 + x) * 3;
        const bright = x < 160 && y < 120;
        px[i] = bright ? 230 : 40;
        px[i + 1] = Math.round((y / 239) * 255);
        px[i + 2] = Math.round((x / 319) * 255);
      }
    }
    const jpg = await sharp(px, raw(320, 240, 3))
      .jpeg({ quality: 95 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    expect((await sharp(jpg).metadata()).orientation).toBe(6);
    const d = await decodeImage(jpg);
    expect([d.width, d.height]).toEqual([240, 320]);
    const cw = await sharp(px, raw(320, 240, 3))
      .rotate(90)
      .raw()
      .toBuffer();
    const ccw = await sharp(px, raw(320, 240, 3))
      .rotate(270)
      .raw()
      .toBuffer();
    const got = await preprocessImage(jpg);
    const toCw = compare(got, await preprocessImage({ data: cw, width: 240, height: 320, channels: 3 })).mae;
    const toCcw = compare(got, await preprocessImage({ data: ccw, width: 240, height: 320, channels: 3 })).mae;
    expect(toCw).toBeLessThan(0.05); // JPEG is lossy
    expect(toCcw).toBeGreaterThan(10 * toCw);
  });

  it("lossless WebP equals the same pixels as PNG", async () => {
    const px = pattern(300, 300, 3);
    const webp = await sharp(px, raw(300, 300, 3))
      .webp({ lossless: true })
      .toBuffer();
    expectSame(await preprocessImage(webp), await preprocessImage({ data: px, width: 300, height: 300, channels: 3 }));
  });

  it("a 1×1 image is upscaled to a constant 224×224 (tiny images never need padding)", async () => {
    const png = await sharp(Buffer.from([10, 128, 250]), raw(1, 1, 3))
      .png()
      .toBuffer();
    const t = await preprocessImage(png);
    expect(t.length).toBe(3 * PLANE);
    for (let c = 0; c < 3; c++) {
      const want = Math.fround(
        Math.fround(([10, 128, 250][c] as number) - Math.fround(Math.fround(CLIP_PREPROCESS.mean[c] as number) * 255)) /
          Math.fround(Math.fround(CLIP_PREPROCESS.std[c] as number) * 255),
      );
      const plane = t.subarray(c * PLANE, (c + 1) * PLANE);
      expect(plane.every((v) => v === want)).toBe(true);
    }
  });

  it("extreme aspect ratios and exact-size images work", async () => {
    for (const [w, h] of [
      [2000, 3],
      [3, 900],
      [224, 224],
      [224, 500],
      [225, 224],
    ] as const) {
      const t = await preprocessImage({ data: pattern(w, h, 3), width: w, height: h, channels: 3 });
      expect(t.length).toBe(3 * PLANE);
      expect(t.every((v) => Number.isFinite(v))).toBe(true);
    }
  });

  it("a 224×224 image is not resampled (values are the normalized input, center-cropped as-is)", async () => {
    const px = pattern(224, 224, 3);
    const t = await preprocessImage({ data: px, width: 224, height: 224, channels: 3 });
    const lutR = (v: number) =>
      Math.fround(Math.fround(v - Math.fround(Math.fround(0.48145466) * 255)) / Math.fround(Math.fround(0.26862954) * 255));
    expect(t[0]).toBe(lutR(px[0] as number));
    expect(t[1000]).toBe(lutR(px[3000] as number));
  });

  it("settings.size changes the output size; mean/std are applied", async () => {
    const t = await preprocessImage(
      { data: pattern(100, 80, 3), width: 100, height: 80, channels: 3 },
      { size: 32, mean: [0, 0, 0], std: [1, 1, 1] },
    );
    expect(t.length).toBe(3 * 32 * 32);
    expect(t.every((v) => v >= 0 && v <= 255)).toBe(true); // (x·255 − 0·255)/(1·255) = raw level
  });

  it("a file path in a folder with spaces and unicode works", async () => {
    const dir = path.join(tmp, "dir with spaces ü");
    await mkdir(dir, { recursive: true });
    const file = path.join(dir, "img é.png");
    await writeFile(
      file,
      await sharp(pattern(50, 40, 3), raw(50, 40, 3))
        .png()
        .toBuffer(),
    );
    expect((await preprocessImage(file)).length).toBe(3 * PLANE);
  });
});

describe("preprocessImage bad input", () => {
  let tmp = "";
  let png: Buffer;
  let jpg: Buffer;
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-bad-"));
    png = await sharp(pattern(300, 200, 3), raw(300, 200, 3))
      .png()
      .toBuffer();
    jpg = await sharp(pattern(300, 200, 3), raw(300, 200, 3))
      .jpeg()
      .toBuffer();
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it("preprocessImage: missing path → NOT_FOUND naming the path", async () => {
    const p = path.join(tmp, "missing.png");
    const e = await codeOf(preprocessImage(p));
    expect(e.code).toBe("NOT_FOUND");
    expect(e.message).toContain(p);
  });
  it("preprocessImage: a folder path → BAD_IMAGE", async () => {
    const e = await codeOf(preprocessImage(tmp));
    expect(e.code).toBe("BAD_IMAGE");
    expect(e.message).toMatch(/not a regular file/);
  });
  it("preprocessImage: a text file → BAD_IMAGE naming the file", async () => {
    const f = path.join(tmp, "notes.png");
    await writeFile(f, "this is not an image at all");
    const e = await codeOf(preprocessImage(f));
    expect(e.code).toBe("BAD_IMAGE");
    expect(e.message).toContain(f);
    expect(e.message).toMatch(/Expected a decodable image/);
  });
  it("preprocessImage: SVG (a vector format the reference cannot open) → BAD_IMAGE", async () => {
    const svg = Buffer.from(
      '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10" fill="red"/></svg>',
    );
    const e = await codeOf(preprocessImage(svg));
    expect(e.code).toBe("BAD_IMAGE");
    expect(e.message).toMatch(/Expected a raster image \(png, jpeg, webp.*\) but the image is svg/);
  });
  it("preprocessImage: zero-size file and empty buffer → BAD_IMAGE", async () => {
    const f = path.join(tmp, "empty.png");
    await writeFile(f, "");
    expect((await codeOf(preprocessImage(f))).message).toMatch(/is an empty file/);
    expect((await codeOf(preprocessImage(new Uint8Array(0)))).code).toBe("BAD_IMAGE");
  });
  it("preprocessImage: truncated PNG → BAD_IMAGE", async () => {
    const e = await codeOf(preprocessImage(png.subarray(0, Math.floor(png.length / 2))));
    expect(e.code).toBe("BAD_IMAGE");
    expect(e.message).toMatch(/complete, decodable image/);
  });
  it("preprocessImage: truncated JPEG → BAD_IMAGE", async () => {
    const e = await codeOf(preprocessImage(jpg.subarray(0, Math.floor(jpg.length / 2))));
    expect(e.code).toBe("BAD_IMAGE");
  });
  it("preprocessImage: a header claiming 50000×50000 is refused before decoding (decompression bomb)", async () => {
    const bomb = Buffer.from(png);
    bomb.writeUInt32BE(50000, 16); // IHDR width
    bomb.writeUInt32BE(50000, 20); // IHDR height
    bomb.writeUInt32BE(zlib.crc32(bomb.subarray(12, 29)) >>> 0, 29); // IHDR CRC, so only the size is odd
    const e = await codeOf(preprocessImage(bomb));
    expect(e.code).toBe("BAD_IMAGE");
    expect(e.message).toMatch(/50000×50000/);
    expect(e.message).toMatch(/at most 179\.0 megapixels/);
    expect(e.message).toMatch(/raise the limit with --max-pixels \(maxPixels in the API\)/);
    expect(e.details).toMatchObject({ width: 50000, height: 50000, maxPixels: 178_956_970 });
  });
  it("preprocessImage: the default cap is PIL's: 2 × MAX_IMAGE_PIXELS (its DecompressionBombError), not below", async () => {
    expect(DEFAULT_MAX_PIXELS).toBe(2 * PIL_MAX_IMAGE_PIXELS);
    expect(PIL_MAX_IMAGE_PIXELS).toBe(Math.floor((1024 * 1024 * 1024) / 4 / 3)); // PIL.Image.MAX_IMAGE_PIXELS
    // 10240×7168 (73.4 MP, a 4× upscale; PIL opens it without a warning) passes the header check, so
    // what fails on this truncated file is the decoding, not the cap. 13378×13378 (past PIL's DecompressionBombError) does not.
    const header = (w: number, h: number) => {
      const b = Buffer.from(png);
      b.writeUInt32BE(w, 16);
      b.writeUInt32BE(h, 20);
      b.writeUInt32BE(zlib.crc32(b.subarray(12, 29)) >>> 0, 29);
      return b;
    };
    const upscale = await codeOf(preprocessImage(header(10240, 7168)));
    expect(upscale.message).not.toMatch(/at most/);
    expect(upscale.message).toMatch(/complete, decodable image/);
    const over = await codeOf(preprocessImage(header(13378, 13378)));
    expect(over.message).toMatch(/at most 179\.0 megapixels .* 13378×13378/);
  });
  it("preprocessImage: maxPixels is configurable (files and RawImage)", async () => {
    const e = await codeOf(preprocessImage(png, { maxPixels: 1000 }));
    expect(e.code).toBe("BAD_IMAGE");
    expect(e.message).toMatch(/300×200/);
    const r = await codeOf(preprocessImage({ data: pattern(300, 200, 3), width: 300, height: 200, channels: 3 }, { maxPixels: 1000 }));
    expect(r.code).toBe("BAD_IMAGE");
    expect((await preprocessImage(png, { maxPixels: 60000 })).length).toBe(3 * PLANE);
  });
  it("preprocessImage: RawImage with the wrong data length → BAD_IMAGE saying what was expected", async () => {
    const e = await codeOf(preprocessImage({ data: new Uint8Array(10), width: 4, height: 4, channels: 3 }));
    expect(e.code).toBe("BAD_IMAGE");
    expect(e.message).toMatch(/Expected image\.data of length 48 \(width 4 × height 4 × channels 3\) but received 10 bytes/);
  });
  it("preprocessImage: RawImage with bad fields → BAD_INPUT", async () => {
    const bad: unknown[] = [
      { data: new Uint8Array(12), width: 2, height: 2, channels: 2 },
      { data: new Uint8Array(12), width: 0, height: 2, channels: 3 },
      { data: new Uint8Array(12), width: 2, height: 1.5, channels: 3 },
      { data: [1, 2, 3], width: 1, height: 1, channels: 3 },
    ];
    for (const b of bad) expect((await codeOf(preprocessImage(b as RawImage))).code).toBe("BAD_INPUT");
    expect(
      (await codeOf(preprocessImage({ data: new Uint8Array(12), width: 2, height: 2, channels: 2 } as unknown as RawImage))).message,
    ).toMatch(/Expected 1, 3 or 4 for image\.channels but received 2 of type number/);
  });
  it("preprocessImage: inputs of the wrong type → BAD_INPUT", async () => {
    for (const b of [42, null, undefined, "", {}]) expect((await codeOf(preprocessImage(b as unknown as string))).code).toBe("BAD_INPUT");
  });
  it("preprocessImage: bad settings → BAD_INPUT", async () => {
    const img = { data: pattern(8, 8, 3), width: 8, height: 8, channels: 3 as const };
    expect((await codeOf(preprocessImage(img, { size: 0 }))).message).toMatch(/Expected an integer from 1 to 4096 for size but received 0/);
    expect((await codeOf(preprocessImage(img, { std: [1, 0, 1] }))).code).toBe("BAD_INPUT");
    expect((await codeOf(preprocessImage(img, { mean: [1, 2] as unknown as [number, number, number] }))).code).toBe("BAD_INPUT");
    expect((await codeOf(preprocessImage(img, { maxPixels: -1 }))).code).toBe("BAD_INPUT");
  });
});
