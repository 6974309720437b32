import { describe, expect, it } from "vitest";
import sharp from "sharp";
import { PickrankError } from "@pickrank/contract";
import { averageRanks, kendall, readPngChunks, readPngText, selectDiverse, setPngText, spearman } from "@pickrank/selector";

describe("rank agreement", () => {
  it("spearman and kendall on known values", () => {
    expect(spearman([1, 2, 3, 4], [10, 20, 30, 40])).toBeCloseTo(1, 12);
    expect(spearman([1, 2, 3, 4], [4, 3, 2, 1])).toBeCloseTo(-1, 12);
    // d = [0,0,1,-1] → rho = 1 - 6·2/(4·15) = 0.8
    expect(spearman([1, 2, 3, 4], [1, 2, 4, 3])).toBeCloseTo(0.8, 12);
    // one discordant pair of 6 → (5-1)/6
    expect(kendall([1, 2, 3, 4], [1, 2, 4, 3])).toBeCloseTo(4 / 6, 12);
    // tau-b with a tie in b: C=2? pairs (0,1):a<,b= tie; (0,2):+,+; (1,2):+,+ → (2-0)/sqrt(3·2)
    expect(kendall([1, 2, 3], [1, 1, 2])).toBeCloseTo(2 / Math.sqrt(6), 12);
    expect(averageRanks([5, 7, 7, 1])).toEqual([3, 1.5, 1.5, 4]);
  });
  it("spearman and kendall are null when undefined", () => {
    expect(spearman([1], [2])).toBeNull();
    expect(kendall([3, 3, 3], [1, 2, 3])).toBeNull();
    expect(spearman([3, 3, 3], [1, 2, 3])).toBeNull();
  });
});

describe("png text chunks", () => {
  it("setPngText adds tEXt/iTXt before IEND, replaces same keywords and keeps the others", async () => {
    const png = await sharp({ create: { width: 4, height: 4, channels: 3, background: "#336699" } })
      .png()
      .toBuffer();
    const a = setPngText(png, { prompt: '{"1":{}}', parameters: "old" });
    const b = setPngText(a, { parameters: "a cat\nSteps: 20", pickrank: "{}", uni: "ünï 猫" });
    expect(readPngText(b)).toEqual({ prompt: '{"1":{}}', parameters: "a cat\nSteps: 20", pickrank: "{}", uni: "ünï 猫" });
    const types = readPngChunks(b).map((c) => c.type);
    expect(types.at(-1)).toBe("IEND");
    expect(types.filter((t) => t === "iTXt")).toHaveLength(1);
    // Still a valid image for a decoder.
    expect((await sharp(b).metadata()).width).toBe(4);
  });
  it("readPngChunks rejects a corrupted chunk", async () => {
    const png = Buffer.from(
      setPngText(
        await sharp({ create: { width: 2, height: 2, channels: 3, background: "#000" } })
          .png()
          .toBuffer(),
        { k: "v" },
      ),
    );
    png[png.length - 20] = png[png.length - 20]! ^ 0xff;
    expect(() => readPngChunks(png)).toThrow(PickrankError);
    expect(() => readPngChunks(Buffer.from("GIF89a"))).toThrow(/Expected a PNG/);
  });
});

describe("selectDiverse", () => {
  const v = (...x: number[]) => {
    const n = Math.hypot(...x);
    return Float32Array.from(x.map((y) => y / n));
  };
  it("takes the best, skips a near-duplicate, keeps best-first order", () => {
    const ranked = [
      { index: 0, seed: 10, embedding: v(1, 0, 0) },
      { index: 1, seed: 11, embedding: v(1, 0.01, 0) },
      { index: 2, seed: 12, embedding: v(0, 1, 0) },
      { index: 3, seed: 13, embedding: v(0, 0, 1) },
    ];
    const { picked, skipped } = selectDiverse(ranked, 3, 0.9);
    expect(picked.map((p) => p.index)).toEqual([0, 2, 3]);
    expect(skipped).toEqual([{ index: 1, seed: 11, similarTo: 0, cosine: expect.any(Number), filled: false }]);
    expect(selectDiverse(ranked, 4, 0.9).picked.map((p) => p.index)).toEqual([0, 1, 2, 3]);
  });
});
