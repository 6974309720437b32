/**
 * `pickrank serve` as a library: one warm Scorer behind Fastify 5.
 *
 * Every request passes, in order: drain check (503 CLOSED while shutting down), token check (401
 * UNAUTHORIZED), admission (429 BUSY with Retry-After past `maxQueue` requests in flight, before the
 * body is read), body limits (413), then the route. A request's work stops when its client goes away
 * or `requestTimeoutMs` passes (504 TIMEOUT); slow senders are cut off by Node's request timeout.
 */
import path from "node:path";
import cors from "@fastify/cors";
import multipart from "@fastify/multipart";
import { PickrankError, abortedError } from "@pickrank/contract";
import { Scorer } from "@pickrank/core";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { bearerChecker } from "./auth.ts";
import { Engine } from "./engine.ts";
import { normalizeError, sendError } from "./http-errors.ts";
import { ServerMetrics } from "./metrics.ts";
import { openApiDocument } from "./openapi.ts";
import { resolveOptions, type ResolvedOptions, type ServerOptions } from "./options.ts";
import { registerScoringRoutes, type RequestContext } from "./routes.ts";

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

const SCORING = new Set(["/v1/rank", "/v1/score"]);

/**
 * Opens the model (unless `options.scorer` is given) and builds the server, not yet listening.
 * Throws BAD_INPUT for bad options (a non-loopback host without a token among them), and the
 * Scorer's errors (BAD_MODEL, DEVICE_UNAVAILABLE, NOT_FOUND …).
 */
export async function createServer(options: ServerOptions): Promise<PickrankServer> {
  const o = resolveOptions(options);
  const own = options.scorer === undefined;
  if (own && (typeof options.model !== "string" || options.model === "")) {
    throw new PickrankError("BAD_INPUT", "Expected a converted model folder for --model (or a scorer) but received none", { details: { parameter: "model" } });
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
  let inFlight = 0;
  let draining = false;
  let url: string | undefined;
  const idle: (() => void)[] = [];
  const metrics: ServerMetrics = new ServerMetrics({ requests: () => inFlight, images: (): number => engine.queuedImages }, o.maxBatch);
  const engine: Engine = new Engine(scorer, o, metrics);
  const modelId = scorer.manifest.source.repo ?? path.basename(scorer.modelDir);
  const limits = { maxBodyBytes: o.maxBodyBytes, maxImages: o.maxImages };
  const app = Fastify({
    logger: o.logger ? { level: "info", stream: process.stderr } : false,
    bodyLimit: o.maxBodyBytes,
    requestTimeout: o.requestTimeoutMs,
    // Node checks request timeouts on this interval (default 30 s): keep it well under the timeout.
    http: { connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(o.requestTimeoutMs / 4))) },
    return503OnClosing: false,
    forceCloseConnections: "idle",
  });
  // Slow headers are Node's to cut off (its request timeout does work before the headers are complete).
  app.server.headersTimeout = Math.min(o.requestTimeoutMs, 60_000);
  // Only JSON and multipart (registered below) are accepted: anything else is 400 BAD_INPUT.
  app.removeContentTypeParser("text/plain");
  const contexts = new WeakMap<FastifyRequest, RequestContext & { abort: AbortController; timer: NodeJS.Timeout; admitted: boolean }>();
  const check = o.token === undefined ? undefined : bearerChecker(o.token);

  const release = (req: FastifyRequest): void => {
    const c = contexts.get(req);
    if (!c) return;
    contexts.delete(req);
    clearTimeout(c.timer);
    if (c.admitted && --inFlight === 0) for (const f of idle.splice(0)) f();
  };

  app.addHook("onRequest", async (req, reply) => {
    const route = req.routeOptions.url ?? "";
    if (draining) {
      reply.header("connection", "close");
      throw new PickrankError("CLOSED", "pickrank serve is shutting down and takes no new requests", { details: { what: "server" } });
    }
    if (check && route !== "/openapi.json") check(req.headers.authorization);
    const abort = new AbortController();
    const admitted = SCORING.has(route);
    const timer = setTimeout(() => onTimeout(req, reply, abort, o.requestTimeoutMs, metrics), o.requestTimeoutMs);
    if (admitted) {
      if (inFlight >= o.maxQueue) {
        clearTimeout(timer);
        const retryAfterS = Math.max(1, Math.min(60, Math.ceil((engine.queuedImages + 1) / Math.max(1, metrics.imagesPerSecond()))));
        throw new PickrankError("BUSY", `Expected at most ${o.maxQueue} requests at once (the server's --max-queue); try again in ${retryAfterS} s`, {
          details: { retryAfterS, limit: o.maxQueue },
        });
      }
      inFlight++;
    }
    contexts.set(req, { t0: performance.now(), signal: abort.signal, abort, timer, admitted });
    reply.raw.once("close", () => {
      // A response closed before it finished: the client went away, so its queued images are dropped.
      if (!reply.raw.writableFinished) abort.abort(abortedError("scoring", "the client closed the connection"));
      release(req);
    });
  });
  app.addHook("onSend", async (_req, reply) => {
    if (draining) reply.header("connection", "close");
  });
  app.addHook("onResponse", async (req, reply) => {
    const route = req.routeOptions.url ?? "unmatched";
    metrics.requests.inc({ route, method: req.method, status: String(reply.statusCode) });
    const c = contexts.get(req);
    if (c) metrics.latency.observe({ route }, (performance.now() - c.t0) / 1000);
    release(req);
  });
  app.setErrorHandler(async (error, req, reply) => {
    const c = contexts.get(req);
    const reason = c?.signal.aborted ? c.signal.reason : undefined;
    const err = normalizeError(reason instanceof PickrankError && reason.code === "TIMEOUT" ? reason : error, limits);
    if (["BUSY", "UNAUTHORIZED", "CLOSED", "PAYLOAD_TOO_LARGE"].includes(err.code)) metrics.rejected.inc({ code: err.code });
    if (err.code === "INTERNAL") req.log.error({ err: error }, "internal error");
    return sendError(reply, err);
  });
  app.setNotFoundHandler(async (req, reply) =>
    sendError(reply, new PickrankError("NOT_FOUND", `Expected one of the routes of GET /openapi.json but received ${req.method} ${req.url.split("?")[0]}`, {
      details: { path: req.url.split("?")[0] },
    })),
  );
  await app.register(multipart, {
    limits: { fileSize: o.maxBodyBytes, files: o.maxImages, fields: 16, fieldSize: Math.min(o.maxBodyBytes, 16 * 1024 * 1024), parts: o.maxImages + 16 },
  });
  if (o.cors) await app.register(cors, { origin: o.cors.includes("*") ? "*" : o.cors, methods: ["GET", "POST"] });

  const context = (req: FastifyRequest): RequestContext => {
    const c = contexts.get(req);
    if (!c) throw new PickrankError("INTERNAL", "A request reached a route without passing admission");
    return { t0: c.t0, signal: c.signal };
  };
  registerInfoRoutes(app, { engine, metrics, modelId, maxQueue: o.maxQueue, inFlight: () => inFlight, draining: () => draining });
  registerScoringRoutes(app, { engine, options: o, modelId, context });

  let closing: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    draining = true;
    if (inFlight > 0) await new Promise<void>((r) => idle.push(r));
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
      return inFlight;
    },
    async listen() {
      await app.listen({ host: o.host, port: o.port });
      const addr = app.server.address();
      const port = typeof addr === "object" && addr ? addr.port : o.port;
      url = `http://${o.host.includes(":") ? `[${o.host}]` : o.host}:${port}`;
      return url;
    },
    close: () => (closing ??= close()),
  };
}

/**
 * A request past its time limit: its work is aborted (the route answers 504 TIMEOUT). A client still
 * sending its body is answered here and its connection closed: Node's own requestTimeout does not
 * cover a body that a handler or parser is still reading, so a slow sender would hold a slot forever.
 */
function onTimeout(req: FastifyRequest, reply: FastifyReply, abort: AbortController, ms: number, metrics: ServerMetrics): void {
  const err = new PickrankError("TIMEOUT", `Expected the whole request and its answer within ${ms} ms (the server's --request-timeout-ms)`, {
    details: { timeoutMs: ms },
  });
  abort.abort(err);
  if (req.raw.complete || reply.sent || reply.raw.headersSent) return;
  metrics.rejected.inc({ code: "TIMEOUT" });
  reply.hijack();
  reply.raw.writeHead(err.httpStatus, { "content-type": "application/json; charset=utf-8", connection: "close" });
  reply.raw.end(JSON.stringify({ error: err.toJSON() }), () => req.raw.socket?.destroy());
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
