/**
 * The OpenAPI 3.1 document of `pickrank serve`, generated from the zod schemas that validate the
 * requests (zod 4's `z.toJSONSchema`, JSON Schema 2020-12, the dialect OpenAPI 3.1 uses). Schemas
 * with a `meta({id})` become `components.schemas` entries, referenced by `$ref`.
 */
import { ERROR_TABLE } from "@pickrank/contract";
import { z } from "zod";
import * as schemas from "./schemas.ts";

type Json = Record<string, unknown>;

const ref = (id: string): Json => ({ $ref: `#/components/schemas/${id}` });
const json = (id: string): Json => ({ "application/json": { schema: ref(id) } });

function errorResponses(codes: (keyof typeof ERROR_TABLE)[]): Record<string, Json> {
  const out: Record<string, Json> = {};
  for (const c of codes) {
    const status = String(ERROR_TABLE[c].http);
    const prev = (out[status]?.["description"] as string | undefined) ?? "";
    out[status] = { description: `${prev ? `${prev}; ` : ""}${c}: ${ERROR_TABLE[c].meaning}`, content: json("ErrorResponse") };
  }
  return out;
}

const POST_ERRORS = ["BAD_INPUT", "UNAUTHORIZED", "PAYLOAD_TOO_LARGE", "BUSY", "CLOSED", "TIMEOUT", "INFERENCE_FAILED"] as const;

const multipartRank = {
  type: "object",
  required: ["prompt"],
  properties: {
    prompt: { type: "string" },
    images: { type: "array", items: { type: "string", contentMediaType: "application/octet-stream" }, description: "file parts, in order" },
    width: {
      type: "integer",
      description: "raw parts: width (application/octet-stream parts are raw RGB/RGBA when width and height are given)",
    },
    height: { type: "integer" },
    channels: { type: "integer", enum: [3, 4] },
  },
};

const multipartScore = {
  type: "object",
  required: ["items"],
  properties: {
    items: { type: "string", description: 'JSON array of ScoreItem whose image is {"part": "<field name of a file part>"}' },
  },
  additionalProperties: { type: "string", contentMediaType: "application/octet-stream" },
};

/** The document served at GET /openapi.json. */
export function openApiDocument(version: string): Json {
  const registry = z.registry<{ id: string }>();
  // Every schema of ./schemas.ts with an id becomes a component, nested ones included.
  for (const s of Object.values(schemas)) {
    const id = s instanceof z.ZodType ? (s.meta() as { id?: string } | undefined)?.id : undefined;
    if (id) registry.add(s as z.ZodType, { id });
  }
  const { schemas: components } = z.toJSONSchema(registry, {
    uri: (id) => `#/components/schemas/${id}`,
    io: "input",
    unrepresentable: "any",
  }) as {
    schemas: Record<string, Json>;
  };
  for (const c of Object.values(components)) {
    delete c["$schema"];
    delete c["$id"];
  }
  const security = [{ bearer: [] }];
  return {
    openapi: "3.1.0",
    info: {
      title: "pickrank serve",
      version,
      description:
        "PickScore over HTTP: score images against prompts with one warm model. Images of concurrent requests share vision runs. " +
        "Scores compare images of the same prompt only. " +
        "Errors are {error:{code,message,details}} with the status of pickrank's code table.",
    },
    servers: [{ url: "http://127.0.0.1:7865" }],
    components: {
      schemas: components,
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "needed when the server has a token" } },
    },
    security,
    paths: {
      "/v1/rank": {
        post: {
          summary: "Rank images made for one prompt, best first (the numbers of `pickrank rank`)",
          requestBody: { required: true, content: { ...json("RankRequest"), "multipart/form-data": { schema: multipartRank } } },
          responses: {
            "200": { description: "ranked, best first", content: json("RankResponse") },
            ...errorResponses(["BAD_IMAGE", ...POST_ERRORS]),
          },
        },
      },
      "/v1/score": {
        post: {
          summary: "Score (prompt, image) items in order; grouped items share a softmax (a reward server's call)",
          requestBody: { required: true, content: { ...json("ScoreRequest"), "multipart/form-data": { schema: multipartScore } } },
          responses: {
            "200": { description: "one result per item, in order", content: json("ScoreResponse") },
            ...errorResponses([...POST_ERRORS]),
          },
        },
      },
      "/v1/health": {
        get: { summary: "Model, device and queue depth", responses: { "200": { description: "ok", content: json("HealthResponse") } } },
      },
      "/v1/models": {
        get: { summary: "The model this server scores with", responses: { "200": { description: "ok", content: json("ModelsResponse") } } },
      },
      "/metrics": {
        get: {
          summary: "Prometheus metrics",
          responses: { "200": { description: "text exposition format", content: { "text/plain": { schema: { type: "string" } } } } },
        },
      },
      "/openapi.json": { get: { summary: "This document", security: [], responses: { "200": { description: "OpenAPI 3.1" } } } },
    },
  };
}
