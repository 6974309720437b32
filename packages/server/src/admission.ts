/**
 * What happens to a request before its route runs, and the bookkeeping that drain needs: drain check
 * (503 CLOSED), token (401 UNAUTHORIZED), admission of scoring requests up to `maxQueue` (429 BUSY
 * with Retry-After, before the body is read), and a per-request AbortSignal that fires when the
 * client goes away or `requestTimeoutMs` passes.
 */
import { PickrankError, abortedError } from "@pickrank/contract";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { bearerChecker } from "./auth.ts";
import type { Engine } from "./engine.ts";
import type { ServerMetrics } from "./metrics.ts";
import type { ResolvedOptions } from "./options.ts";
import type { RequestContext } from "./routes.ts";

/** Routes whose requests count against `maxQueue`. */
const SCORING = new Set(["/v1/rank", "/v1/score"]);

interface Tracked extends RequestContext {
  abort: AbortController;
  timer: NodeJS.Timeout;
  admitted: boolean;
}

export class Admission {
  /** Scoring requests admitted and not yet answered. */
  inFlight = 0;
  /** Set by drain(): every new request gets 503 CLOSED. */
  draining = false;
  readonly #o: ResolvedOptions;
  readonly #engine: Engine;
  readonly #metrics: ServerMetrics;
  readonly #check: ((authorization: string | undefined) => void) | undefined;
  readonly #tracked = new WeakMap<FastifyRequest, Tracked>();
  #idle: (() => void)[] = [];

  constructor(o: ResolvedOptions, engine: Engine, metrics: ServerMetrics) {
    this.#o = o;
    this.#engine = engine;
    this.#metrics = metrics;
    this.#check = o.token === undefined ? undefined : bearerChecker(o.token);
  }

  /** Adds the onRequest / onSend / onResponse hooks to `app`. */
  install(app: FastifyInstance): void {
    app.addHook("onRequest", async (req, reply) => this.#admit(req, reply));
    app.addHook("onSend", async (_req, reply) => {
      if (this.draining) reply.header("connection", "close");
    });
    app.addHook("onResponse", async (req, reply) => {
      const route = req.routeOptions.url ?? "unmatched";
      this.#metrics.requests.inc({ route, method: req.method, status: String(reply.statusCode) });
      const t = this.#tracked.get(req);
      if (t) this.#metrics.latency.observe({ route }, (performance.now() - t.t0) / 1000);
      this.#release(req);
    });
  }

  /** The request's arrival time and signal; INTERNAL for a request that was not tracked. */
  context(req: FastifyRequest): RequestContext {
    const t = this.#tracked.get(req);
    if (!t) throw new PickrankError("INTERNAL", "A request reached a route without passing admission");
    return { t0: t.t0, signal: t.signal };
  }

  /** Why the request's work was stopped (TIMEOUT, ABORTED), if it was. */
  abortReason(req: FastifyRequest): unknown {
    const t = this.#tracked.get(req);
    return t?.signal.aborted ? t.signal.reason : undefined;
  }

  /** Refuses new requests from now on; resolves when every admitted request has been answered. */
  async drain(): Promise<void> {
    this.draining = true;
    if (this.inFlight > 0) await new Promise<void>((r) => this.#idle.push(r));
  }

  #admit(req: FastifyRequest, reply: FastifyReply): void {
    const route = req.routeOptions.url ?? "";
    if (this.draining) {
      reply.header("connection", "close");
      throw new PickrankError("CLOSED", "pickrank serve is shutting down and takes no new requests", { details: { what: "server" } });
    }
    if (this.#check && route !== "/openapi.json") this.#check(req.headers.authorization);
    const admitted = SCORING.has(route);
    if (admitted && this.inFlight >= this.#o.maxQueue) throw this.#busy();
    if (admitted) this.inFlight++;
    const abort = new AbortController();
    const timer = setTimeout(() => onTimeout(req, reply, abort, this.#o.requestTimeoutMs, this.#metrics), this.#o.requestTimeoutMs);
    this.#tracked.set(req, { t0: performance.now(), signal: abort.signal, abort, timer, admitted });
    reply.raw.once("close", () => {
      // A response closed before it finished: the client went away, so its queued images are dropped.
      if (!reply.raw.writableFinished) abort.abort(abortedError("scoring", "the client closed the connection"));
      this.#release(req);
    });
  }

  #busy(): PickrankError<"BUSY"> {
    const rate = Math.max(1, this.#metrics.imagesPerSecond());
    const retryAfterS = Math.max(1, Math.min(60, Math.ceil((this.#engine.queuedImages + 1) / rate)));
    return new PickrankError(
      "BUSY",
      `Expected at most ${this.#o.maxQueue} requests at once (the server's --max-queue); try again in ${retryAfterS} s`,
      {
        details: { retryAfterS, limit: this.#o.maxQueue },
      },
    );
  }

  #release(req: FastifyRequest): void {
    const t = this.#tracked.get(req);
    if (!t) return;
    this.#tracked.delete(req);
    clearTimeout(t.timer);
    if (t.admitted && --this.inFlight === 0) for (const f of this.#idle.splice(0)) f();
  }
}

/**
 * A request past its time limit: its work is aborted (the route answers 504 TIMEOUT). A client still
 * sending its body is answered here and its connection closed: Node's own requestTimeout does not
 * cover a body that a handler or parser is still reading, so a slow sender would hold a slot forever.
 */
function onTimeout(req: FastifyRequest, reply: FastifyReply, abort: AbortController, ms: number, metrics: ServerMetrics): void {
  const err = new PickrankError(
    "TIMEOUT",
    `Expected the whole request and its answer within ${ms} ms (the server's --request-timeout-ms)`,
    {
      details: { timeoutMs: ms },
    },
  );
  abort.abort(err);
  if (req.raw.complete || reply.sent || reply.raw.headersSent) return;
  metrics.rejected.inc({ code: "TIMEOUT" });
  reply.hijack();
  reply.raw.writeHead(err.httpStatus, { "content-type": "application/json; charset=utf-8", connection: "close" });
  reply.raw.end(JSON.stringify({ error: err.toJSON() }), () => req.raw.socket?.destroy());
}
