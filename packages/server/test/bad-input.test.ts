/** BAD CALL tests: every bad request gets `{error:{code,message,details}}` with the code table's status. */
import net from "node:net";
import { crc32 } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import sharp from "sharp";
import type { Scorer } from "@pickrank/core";
import { removeTinyModels } from "../../../test/helpers/tiny-model.ts";
import type { PickrankServer } from "../src/index.ts";
import { blobOf, IMAGE_NAMES, getJson, imageBytes, postJson, serve, tinyScorer } from "./helpers.ts";

let scorer: Scorer;
let server: PickrankServer;
let url: string;
let png: string;

beforeAll(async () => {
  scorer = await tinyScorer();
  ({ server, url } = await serve(scorer, { maxBodyBytes: 256 * 1024, maxImages: 4, maxPixels: 1024 * 1024 }));
  png = (await imageBytes(IMAGE_NAMES[0])).toString("base64");
});

afterAll(async () => {
  await server?.close();
  await scorer?.dispose();
  await removeTinyModels();
});

/** A valid PNG whose header claims width × height (IHDR rewritten, CRC recomputed): a decompression bomb's header. */
async function pngClaiming(width: number, height: number): Promise<Buffer> {
  const buf = Buffer.from(
    await sharp({ create: { width: 8, height: 8, channels: 3, background: "#808080" } })
      .png()
      .toBuffer(),
  );
  // Signature (8) + length (4) + "IHDR" (4), then width and height; the CRC covers type + data (17 bytes).
  buf.writeUInt32BE(width, 16);
  buf.writeUInt32BE(height, 20);
  buf.writeUInt32BE(crc32(buf.subarray(12, 29)), 29);
  return buf;
}

function expectError(res: { status: number; body: any }, status: number, code: string, message?: RegExp): void {
  expect(res.status).toBe(status);
  expect(res.body.error.code).toBe(code);
  expect(typeof res.body.error.message).toBe("string");
  if (message) expect(res.body.error.message).toMatch(message);
}

describe("BAD CALL - POST /v1/rank", () => {
  it("not an image → 422 BAD_IMAGE naming the image", async () => {
    const res = await postJson(`${url}/v1/rank`, { prompt: "p", images: [png, Buffer.from("hello, not a picture").toString("base64")] });
    expectError(res, 422, "BAD_IMAGE", /images\[1\]/);
    expect(res.body.error.details.index).toBe(1);
  });

  it("truncated PNG → 422 BAD_IMAGE", async () => {
    const bytes = await imageBytes("gray_300x200.png");
    const res = await postJson(`${url}/v1/rank`, {
      prompt: "p",
      images: [bytes.subarray(0, Math.floor(bytes.length / 2)).toString("base64")],
    });
    expectError(res, 422, "BAD_IMAGE");
  });

  it("pixel bomb (a header claiming 60000×60000) → 413 PAYLOAD_TOO_LARGE before decoding", async () => {
    const bomb = await pngClaiming(60_000, 60_000);
    const res = await postJson(`${url}/v1/rank`, { prompt: "p", images: [bomb.toString("base64")] });
    expectError(res, 413, "PAYLOAD_TOO_LARGE", /60000×60000/);
  });

  it("raw pixels over --max-pixels → 413 PAYLOAD_TOO_LARGE", async () => {
    const res = await postJson(`${url}/v1/rank`, { prompt: "p", images: [{ raw: "AAAA", width: 2048, height: 2048, channels: 3 }] });
    expectError(res, 413, "PAYLOAD_TOO_LARGE", /--max-pixels/);
  });

  it("wrong content type → 400 BAD_INPUT saying which types are expected", async () => {
    const res = await fetch(`${url}/v1/rank`, { method: "POST", headers: { "content-type": "text/plain" }, body: "prompt=p" });
    expectError({ status: res.status, body: await res.json() }, 400, "BAD_INPUT", /application\/json or multipart\/form-data/);
  });

  it("missing prompt → 400 BAD_INPUT naming prompt", async () => {
    const res = await postJson(`${url}/v1/rank`, { images: [png] });
    expectError(res, 400, "BAD_INPUT", /prompt/);
    const form = new FormData();
    form.append("images", blobOf(await imageBytes(IMAGE_NAMES[0]), "image/png"), "a.png");
    const mp = await fetch(`${url}/v1/rank`, { method: "POST", body: form });
    expectError({ status: mp.status, body: await mp.json() }, 400, "BAD_INPUT", /prompt/);
  });

  it("too many images → 413 PAYLOAD_TOO_LARGE (JSON and multipart)", async () => {
    const res = await postJson(`${url}/v1/rank`, { prompt: "p", images: [png, png, png, png, png] });
    expectError(res, 413, "PAYLOAD_TOO_LARGE", /at most 4 images/);
    const form = new FormData();
    form.set("prompt", "p");
    const bytes = await imageBytes(IMAGE_NAMES[0]);
    for (let i = 0; i < 5; i++) form.append("images", blobOf(bytes, "image/png"), `${i}.png`);
    const mp = await fetch(`${url}/v1/rank`, { method: "POST", body: form });
    expectError({ status: mp.status, body: await mp.json() }, 413, "PAYLOAD_TOO_LARGE");
  });

  it("empty body → 400 BAD_INPUT, with or without a content type", async () => {
    expectError(await postJson(`${url}/v1/rank`, ""), 400, "BAD_INPUT", /empty/);
    const res = await fetch(`${url}/v1/rank`, { method: "POST" });
    expectError({ status: res.status, body: await res.json() }, 400, "BAD_INPUT");
  });

  it("malformed JSON and an empty image list → 400 BAD_INPUT", async () => {
    expectError(await postJson(`${url}/v1/rank`, '{"prompt": "p", "images": ['), 400, "BAD_INPUT");
    expectError(await postJson(`${url}/v1/rank`, { prompt: "p", images: [] }), 400, "BAD_INPUT", /images/);
  });

  it("oversized JSON → 413 PAYLOAD_TOO_LARGE naming the limit", async () => {
    const res = await postJson(`${url}/v1/rank`, { prompt: "p", images: ["A".repeat(300 * 1024)] });
    expectError(res, 413, "PAYLOAD_TOO_LARGE", /262144 bytes/);
  });

  it("an unknown route → 404 NOT_FOUND as JSON", async () => {
    expectError(await getJson(`${url}/v2/nothing`), 404, "NOT_FOUND");
  });

  it("a client that sends part of its body and never finishes is cut off (TIMEOUT), and the server keeps serving", async () => {
    // A server of its own with a short limit: the others keep the default, so a loaded machine cannot
    // time out their ordinary requests.
    const slow = await serve(scorer, { requestTimeoutMs: 1500 });
    const port = Number(new URL(slow.url).port);
    const answer = await new Promise<string>((resolve, reject) => {
      const sock = net.connect(port, "127.0.0.1", () => {
        sock.write(
          `POST /v1/rank HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"prompt": "p", `,
        );
      });
      let data = "";
      sock.on("data", (d) => (data += d.toString()));
      sock.on("close", () => resolve(data));
      sock.on("error", reject);
      // A generous upper bound, not a measurement: the server's limit is 1.5 s.
      setTimeout(() => reject(new Error(`the server kept a stalled request open; received so far: ${data}`)), 30_000).unref();
    });
    expect(answer).toMatch(/^HTTP\/1\.1 504/);
    expect(answer).toMatch(/"code":"TIMEOUT"/);
    const health = await getJson(`${slow.url}/v1/health`);
    await slow.server.close();
    expect(health.status).toBe(200);
    expect(health.body.queue.requests).toBe(0);
  });
});
