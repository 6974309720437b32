/**
 * `pickrank serve` as a library: one warm Scorer behind Fastify 5.
 *
 * Every request passes, in order: drain check (503 CLOSED while shutting down), token check (401
 * UNAUTHORIZED), admission (429 BUSY with Retry-After past `maxQueue` requests in flight, before the
 * body is read), body limits (413), then the route. A request's work stops when its client goes away
 * or `requestTimeoutMs` passes (504 TIMEOUT; a client still sending its body is cut off then).
 */
import path from "node:path";
import cors from "@fastify/cors";
import multipart from "@fastify/multipart";
import { PickrankError } from "@pickrank/contract";
import { Scorer } from "@pickrank/core";
import Fastify, { type FastifyInstance } from "fastify";
import { Admission } from "./admission.ts";
import { Engine } from "./engine.ts";
import { listenError } from "./listen.ts";
import { normalizeError, sendError } from "./http-errors.ts";
import { ServerMetrics } from "./metrics.ts";
import { openApiDocument } from "./openapi.ts";
import { resolveOptions, type ResolvedOptions, type ServerOptions } from "./options.ts";
import { registerScoringRoutes } from "./routes.ts";

/** The version of `pickrank serve`, reported in the OpenAPI document. */
export const SERVER_VERSION = "0.1.0";

/** A server made by createServer: listen, close (drains), and what tests and programs inspect. */
export interface PickrankServer {
  readonly app: FastifyInstance;
  readonly engine: Engine;
  readonly metrics: ServerMetrics;
  readonly options: ResolvedOptions;
  /** Base URL once listening ("http://127.0.0.1:7865"), else undefined. */
  readonly url: string | undefined;
  /** Requests admitted and not yet answered. */
  readonly inFlight: number;
  /** Starts listening on options.host/port; resolves with the base URL. */
  listen(): Promise<string>;
  /**
   * Stops taking work (new requests get 503 CLOSED), waits for admitted requests to be answered, then
   * closes the listener, and disposes the Scorer if the server opened it. Safe to call twice.
   */
  close(): Promise<void>;
}

/**
 * Opens the model (unless `options.scorer` is given) and builds the server, not yet listening.
 * Throws BAD_INPUT for bad options (a non-loopback host without a token among them), and the
 * Scorer's errors (BAD_MODEL, DEVICE_UNAVAILABLE, NOT_FOUND …).
 */
export async function createServer(options: ServerOptions): Promise<PickrankServer> {
  const o = resolveOptions(options);
  const own = options.scorer === undefined;
  if (own && (typeof options.model !== "string" || options.model === "")) {
    throw new PickrankError("BAD_INPUT", "Expected a converted model folder for --model (or a scorer) but received none", {
      details: { parameter: "model" },
    });
  }
  const scorer =
    options.scorer ??
    (await Scorer.create({
      model: options.model!,
      device: options.device ?? "auto",
      batchSize: o.maxBatch,
      textCacheSize: 1,
      ...(options.preprocessWorkers === undefined ? {} : { preprocessWorkers: options.preprocessWorkers }),
      ...(options.threads === undefined ? {} : { threads: options.threads }),
    }));
  try {
    return await build(o, scorer, own);
  } catch (e) {
    if (own) await scorer.dispose();
    throw e;
  }
}

/** createServer, then listen. Resolves once the port is bound. */
export async function startServer(options: ServerOptions): Promise<PickrankServer> {
  const server = await createServer(options);
  try {
    await server.listen();
  } catch (e) {
    await server.close();
    throw e;
  }
  return server;
}

async function build(o: ResolvedOptions, scorer: Scorer, ownScorer: boolean): Promise<PickrankServer> {
  let url: string | undefined;
  const metrics: ServerMetrics = new ServerMetrics(
    { requests: () => admission.inFlight, images: (): number => engine.queuedImages },
    o.maxBatch,
  );
  const engine: Engine = new Engine(scorer, o, metrics);
  const admission: Admission = new Admission(o, engine, metrics);
  const modelId = scorer.manifest.source.repo ?? path.basename(scorer.modelDir);
  const app = await buildApp(o, admission, metrics);
  registerInfoRoutes(app, {
    engine,
    metrics,
    modelId,
    maxQueue: o.maxQueue,
    inFlight: () => admission.inFlight,
    draining: () => admission.draining,
  });
  registerScoringRoutes(app, { engine, options: o, modelId, context: (req) => admission.context(req) });
  let closing: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    await admission.drain();
    await app.close();
    engine.close();
    if (ownScorer) await scorer.dispose();
  };
  return {
    app,
    engine,
    metrics,
    options: o,
    get url() {
      return url;
    },
    get inFlight() {
      return admission.inFlight;
    },
    async listen() {
      await app.listen({ host: o.host, port: o.port }).catch((e: unknown) => {
        throw listenError(e, o.host, o.port);
      });
      const addr = app.server.address();
      const port = typeof addr === "object" && addr ? addr.port : o.port;
      url = `http://${o.host.includes(":") ? `[${o.host}]` : o.host}:${port}`;
      return url;
    },
    close: () => (closing ??= close()),
  };
}

/** Fastify with the server's limits, hooks, error mapping and plugins; no routes yet. */
async function buildApp(o: ResolvedOptions, admission: Admission, metrics: ServerMetrics): Promise<FastifyInstance> {
  const limits = { maxBodyBytes: o.maxBodyBytes, maxImages: o.maxImages };
  const app = Fastify({
    logger: o.logger ? { level: "info", stream: process.stderr } : false,
    bodyLimit: o.maxBodyBytes,
    // Our own timer (admission.ts) answers a request past requestTimeoutMs with 504 TIMEOUT and the
    // error body; Node's requestTimeout is only the backstop behind it (a bare 408). Both equal, the two
    // raced and a loaded machine got Node's 408: the backstop waits twice as long.
    requestTimeout: 2 * o.requestTimeoutMs,
    // Node checks request timeouts on this interval (default 30 s): keep it well under the timeout.
    http: { connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(o.requestTimeoutMs / 4))) },
    return503OnClosing: false,
    forceCloseConnections: "idle",
  });
  // Slow headers are Node's to cut off (its request timeout does work before the headers are complete).
  app.server.headersTimeout = Math.min(o.requestTimeoutMs, 60_000);
  // Only JSON and multipart (registered below) are accepted: anything else is 400 BAD_INPUT.
  app.removeContentTypeParser("text/plain");
  admission.install(app);
  app.setErrorHandler(async (error, req, reply) => {
    const reason = admission.abortReason(req);
    const err = normalizeError(reason instanceof PickrankError && reason.code === "TIMEOUT" ? reason : error, limits);
    if (["BUSY", "UNAUTHORIZED", "CLOSED", "PAYLOAD_TOO_LARGE"].includes(err.code)) metrics.rejected.inc({ code: err.code });
    if (err.code === "INTERNAL") req.log.error({ err: error }, "internal error");
    return sendError(reply, err);
  });
  app.setNotFoundHandler(async (req, reply) => {
    const route = req.url.split("?")[0];
    return sendError(
      reply,
      new PickrankError("NOT_FOUND", `Expected one of the routes of GET /openapi.json but received ${req.method} ${route}`, {
        details: { path: route },
      }),
    );
  });
  await app.register(multipart, {
    limits: {
      fileSize: o.maxBodyBytes,
      files: o.maxImages,
      fields: 16,
      fieldSize: Math.min(o.maxBodyBytes, 16 * 1024 * 1024),
      parts: o.maxImages + 16,
    },
  });
  if (o.cors) await app.register(cors, { origin: o.cors.includes("*") ? "*" : o.cors, methods: ["GET", "POST"] });
  return app;
}

interface InfoDeps {
  engine: Engine;
  metrics: ServerMetrics;
  modelId: string;
  maxQueue: number;
  inFlight: () => number;
  draining: () => boolean;
}

/** GET /v1/health, /v1/models, /metrics, /openapi.json. */
function registerInfoRoutes(app: FastifyInstance, d: InfoDeps): void {
  const started = performance.now();
  const doc = openApiDocument(SERVER_VERSION);
  const scorer = d.engine.scorer;
  app.get("/openapi.json", async () => doc);
  app.get("/v1/health", async () => ({
    status: d.draining() ? "draining" : "ok",
    model: d.modelId,
    device: scorer.device,
    queue: { requests: d.inFlight(), images: d.engine.queuedImages, maxRequests: d.maxQueue },
    uptimeS: Math.round((performance.now() - started) / 1000),
  }));
  app.get("/v1/models", async () => {
    const m = scorer.manifest;
    return {
      models: [
        {
          id: d.modelId,
          dir: scorer.modelDir,
          dtype: m.dtype,
          ...(m.source.repo ? { repo: m.source.repo } : {}),
          ...(m.source.revision ? { revision: m.source.revision } : {}),
          projectionDim: m.dims.projection,
          imageSize: m.dims.imageSize,
          device: scorer.device,
        },
      ],
    };
  });
  app.get("/metrics", async (_req, reply) => {
    reply.type(d.metrics.registry.contentType);
    return d.metrics.registry.metrics();
  });
}
