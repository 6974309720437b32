/** Safety and lifecycle: token, host rule, CORS, 429 with Retry-After, request timeout, drain on close. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Scorer } from "@pickrank/core";
import { removeTinyModels } from "../../../test/helpers/tiny-model.ts";
import { checkListenAddress, createServer, isLoopback, resolveOptions, startServer } from "../src/index.ts";
import { IMAGE_NAMES, gatedScorer, getJson, imageBytes, postJson, serve, tinyScorer, until } from "./helpers.ts";

const TOKEN = "s3cret-token-of-enough-length";
let scorer: Scorer;
let png: string;

beforeAll(async () => {
  scorer = await tinyScorer();
  png = (await imageBytes(IMAGE_NAMES[0])).toString("base64");
});

afterAll(async () => {
  await scorer?.dispose();
  await removeTinyModels();
});

describe("token", () => {
  it("BAD CALL - a missing or wrong token → 401 UNAUTHORIZED; the right one is served", async () => {
    const { server, url } = await serve(scorer, { token: TOKEN });
    try {
      const missing = await postJson(`${url}/v1/rank`, { prompt: "p", images: [png] });
      expect(missing.status).toBe(401);
      expect(missing.body.error.code).toBe("UNAUTHORIZED");
      expect(missing.headers.get("www-authenticate")).toMatch(/^Bearer/);
      const wrong = await getJson(`${url}/v1/health`, { authorization: `Bearer ${TOKEN}x` });
      expect(wrong.status).toBe(401);
      expect(wrong.body.error.message).toMatch(/another one/);
      const right = await postJson(`${url}/v1/rank`, { prompt: "p", images: [png] }, { authorization: `Bearer ${TOKEN}` });
      expect(right.status).toBe(200);
      expect((await getJson(`${url}/openapi.json`)).status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it("BAD CALL - a host other than loopback refuses to start without a token (env PICKRANK_TOKEN counts)", async () => {
    expect(() => resolveOptions({ host: "0.0.0.0" }, {})).toThrow(/Expected a token \(--token-file <file> or env PICKRANK_TOKEN\)/);
    await expect(createServer({ scorer, host: "0.0.0.0" })).rejects.toMatchObject({ code: "BAD_INPUT" });
    expect(resolveOptions({ host: "0.0.0.0" }, { PICKRANK_TOKEN: TOKEN }).token).toBe(TOKEN);
    expect(() => resolveOptions({ token: "short" }, {})).toThrow(/at least 16 characters/);
    expect(["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"].every(isLoopback)).toBe(true);
    expect(["0.0.0.0", "192.168.1.2", "::", "example.com"].some(isLoopback)).toBe(false);
  });
});

describe("address", () => {
  it("BAD CALL - a port in use: CONFLICT naming it and --port, before a model load (check) and at listen", async () => {
    const { server, url } = await serve(scorer);
    const port = Number(new URL(url).port);
    try {
      const expected = {
        code: "CONFLICT",
        message: `Expected 127.0.0.1:${port} to be free but another process listens there (another pickrank serve?); stop it or choose another --port`,
      };
      await expect(checkListenAddress("127.0.0.1", port)).rejects.toMatchObject(expected);
      await expect(startServer({ scorer, host: "127.0.0.1", port })).rejects.toMatchObject(expected);
    } finally {
      await server.close();
    }
    await expect(checkListenAddress("127.0.0.1", port)).resolves.toBeUndefined();
  });
});

describe("CORS", () => {
  it("is off unless asked; --cors allows the origins given", async () => {
    const off = await serve(scorer);
    const on = await serve(scorer, { cors: ["https://app.example"] });
    try {
      const a = await fetch(`${off.url}/v1/health`, { headers: { origin: "https://app.example" } });
      expect(a.headers.get("access-control-allow-origin")).toBeNull();
      const b = await fetch(`${on.url}/v1/health`, { headers: { origin: "https://app.example" } });
      expect(b.headers.get("access-control-allow-origin")).toBe("https://app.example");
    } finally {
      await Promise.all([off.server.close(), on.server.close()]);
    }
  });
});

describe("queue limit, timeout and drain (vision runs held by a gate: no timing assumption)", () => {
  it("past --max-queue requests: 429 BUSY with Retry-After; admitted requests still complete", async () => {
    const gated = gatedScorer(scorer);
    const { server, url } = await serve(gated.scorer, { maxQueue: 2, maxWaitMs: 0 });
    try {
      const held = [1, 2].map((i) => postJson(`${url}/v1/rank`, { prompt: `held ${i}`, images: [png] }));
      await until(() => server.inFlight === 2);
      const busy = await postJson(`${url}/v1/rank`, { prompt: "one more", images: [png] });
      expect(busy.status).toBe(429);
      expect(busy.body.error.code).toBe("BUSY");
      expect(Number(busy.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect((await getJson(`${url}/v1/health`)).body.queue.requests).toBe(2);
      gated.open();
      for (const r of await Promise.all(held)) expect(r.status).toBe(200);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toMatch(/pickrank_rejected_requests_total\{code="BUSY"\} 1/);
      expect(metrics).toMatch(/pickrank_http_requests_total\{route="\/v1\/rank",method="POST",status="429"\} 1/);
    } finally {
      gated.open();
      await server.close();
    }
  });

  it("a request past --request-timeout-ms → 504 TIMEOUT, and the slot is freed", async () => {
    const gated = gatedScorer(scorer);
    const { server, url } = await serve(gated.scorer, { requestTimeoutMs: 300, maxWaitMs: 0 });
    try {
      const res = await postJson(`${url}/v1/rank`, { prompt: "never runs", images: [png] });
      expect(res.status).toBe(504);
      expect(res.body.error.code).toBe("TIMEOUT");
      await until(() => server.inFlight === 0);
    } finally {
      gated.open();
      await server.close();
    }
  });

  it("close() drains: in-flight requests finish, new ones get 503 CLOSED, then the port closes", async () => {
    const gated = gatedScorer(scorer);
    const { server, url } = await serve(gated.scorer, { maxWaitMs: 0 });
    const held = postJson(`${url}/v1/rank`, { prompt: "in flight", images: [png] });
    await until(() => gated.runs() === 1);
    const closed = server.close();
    const refused = await postJson(`${url}/v1/rank`, { prompt: "too late", images: [png] });
    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe("CLOSED");
    expect((await getJson(`${url}/v1/health`)).status).toBe(503);
    gated.open();
    const done = await held;
    expect(done.status).toBe(200);
    expect(done.body.results[0].rank).toBe(1);
    await closed;
    await expect(fetch(`${url}/v1/health`)).rejects.toThrow();
  });
});

describe("GET routes", () => {
  it("health, models, metrics and the OpenAPI 3.1 document", async () => {
    const { server, url } = await serve(scorer);
    try {
      await postJson(`${url}/v1/rank`, { prompt: "p", images: [png, png] });
      const health = await getJson(`${url}/v1/health`);
      expect(health.body).toMatchObject({ status: "ok", device: "cpu", queue: { requests: 0, images: 0, maxRequests: 64 } });
      const models = await getJson(`${url}/v1/models`);
      expect(models.body.models).toHaveLength(1);
      expect(models.body.models[0]).toMatchObject({
        dtype: "fp32",
        dir: scorer.modelDir,
        device: "cpu",
        projectionDim: scorer.manifest.dims.projection,
      });
      const metrics = await fetch(`${url}/metrics`);
      expect(metrics.headers.get("content-type")).toMatch(/^text\/plain/);
      const text = await metrics.text();
      for (const name of [
        "pickrank_http_request_duration_seconds_bucket",
        "pickrank_batch_size_bucket",
        "pickrank_queue_requests",
        "pickrank_images_per_second",
        "pickrank_process_resident_memory_bytes",
      ]) {
        expect(text).toContain(name);
      }
      expect(text).toMatch(/pickrank_images_scored_total 2/);
      const doc = (await getJson(`${url}/openapi.json`)).body;
      expect(doc.openapi).toBe("3.1.0");
      expect(Object.keys(doc.paths).sort()).toEqual(["/metrics", "/openapi.json", "/v1/health", "/v1/models", "/v1/rank", "/v1/score"]);
      const rank = doc.paths["/v1/rank"].post;
      expect(rank.requestBody.content["application/json"].schema.$ref).toBe("#/components/schemas/RankRequest");
      expect(Object.keys(rank.requestBody.content)).toContain("multipart/form-data");
      expect(rank.responses["413"].description).toMatch(/PAYLOAD_TOO_LARGE/);
      expect(doc.components.schemas.RankRequest.required).toEqual(["prompt", "images"]);
      expect(doc.components.schemas.RankRequest.properties.images.items.$ref).toBe("#/components/schemas/Image");
      expect(JSON.stringify(doc.components.schemas.ErrorBody)).toContain("PAYLOAD_TOO_LARGE");
    } finally {
      await server.close();
    }
  });
});
