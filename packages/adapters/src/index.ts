/**
 * @pickrank/adapters: generation backends behind the Backend contract of @pickrank/contract —
 * ComfyUI (HTTP + WebSocket), Automatic1111 / Forge / SD.Next (HTTP) and pools of them. Importing
 * this module registers the kinds "comfyui", "a1111" and "pool" with createBackend().
 *
 * Every error thrown is a PickrankError (`code` from the contract's table): BAD_INPUT for a bad spec,
 * request or option; BACKEND_UNREACHABLE, BACKEND_AUTH (credentials refused or missing),
 * BACKEND_REJECTED (the server refused the request or failed it), BACKEND_PROTOCOL (an answer that
 * breaks the protocol), BACKEND_STALLED (ComfyUI stopped answering, or our render stopped
 * progressing), TIMEOUT, ABORTED (the caller's signal), CLOSED (used after close()).
 */
import "./builtins.ts";

/** The Backend contract (see @pickrank/contract): requests, candidates, events, health reports. */
export type {
  Backend,
  BackendEvent,
  BackendFactory,
  BackendSpec,
  Candidate,
  CandidateMeta,
  CandidateTimings,
  FailedCandidate,
  GenerateRequest,
  Generated,
  GenerationParams,
  HealthReport,
  RenderSettings,
} from "@pickrank/contract";

/**
 * createBackend(spec) builds a backend of a registered kind (BAD_INPUT for an unknown kind or a bad
 * spec); registerBackend(kind, factory) adds or replaces a kind; backendKinds() lists them, sorted.
 */
export { backendKinds, createBackend, registerBackend } from "./registry.ts";

/**
 * parseEndpoint(url, auth, kind) splits a server URL into its base and an Authorization header
 * (BAD_INPUT for a non-http URL or a bad "%" escape in its credentials); redactUrl(url) hides
 * "user:pass@" for printing.
 */
export { parseEndpoint, redactUrl, type Endpoint } from "./http.ts";

/**
 * resolveAuth({ auth, authFile, env }) picks the credentials from --auth, --auth-file or the
 * PICKRANK_AUTH environment variable (AUTH_ENV), for BackendSpec.auth; never echoes them.
 */
export { AUTH_ENV, resolveAuth, type AuthSources, type ResolvedAuth } from "./auth.ts";

/** resolveSeeds(req, maxSeed?, who?): the seed of each candidate (`seeds`, or `seed + i`); BAD_INPUT past maxSeed. */
export { resolveSeeds } from "./util.ts";

/** ComfyUI: the backend and its options, its HTTP/WebSocket client, the shipped default graph. */
export { ComfyUIBackend, type ComfyUIOptions } from "./comfyui/backend.ts";
export { ComfyClient, type ComfyClientOptions } from "./comfyui/client.ts";
export { DEFAULT_TXT2IMG_WORKFLOW } from "./comfyui/default-workflow.ts";

/**
 * ComfyUI workflows in API format: parseWorkflow (object or JSON text → workflow, BAD_INPUT for the
 * UI format), detectWorkflow (where prompt, seed, size, settings and outputs live, BAD_INPUT naming
 * what is ambiguous; DetectOptions.objectInfo: the server's node definitions), applyWorkflow (a copy
 * with the values written in), NODE_FLAGS (the node overrides as command-line flags).
 */
export {
  applyWorkflow,
  detectWorkflow,
  parseWorkflow,
  NODE_FLAGS,
  type ComfyWorkflow,
  type DetectOptions,
  type InputRef,
  type NodeOverrides,
  type ObjectInfo,
  type ObjectInfoClass,
  type WorkflowPlan,
} from "./comfyui/workflow.ts";

/** Automatic1111 / Forge / SD.Next: the backend and its options. */
export { A1111Backend, type A1111Options } from "./a1111/backend.ts";

/** A pool of backends: candidates spread over members, retried elsewhere when a member fails. */
export { PoolBackend, type PoolMember, type PoolOptions, type PoolServerStats } from "./pool.ts";
