export type {
  Backend,
  BackendEvent,
  BackendFactory,
  BackendSpec,
  Candidate,
  CandidateTimings,
  FailedCandidate,
  GenerateRequest,
  Generated,
  GenerationParams,
} from "@pickrank/contract";
export { backendKinds, createBackend, registerBackend } from "./registry.ts";
export { parseEndpoint, redactUrl } from "./http.ts";
export { resolveSeeds } from "./util.ts";
export { ComfyClient, describeComfyError, type ComfyClientOptions } from "./comfyui/client.ts";
export { ComfyUIBackend, type ComfyUIOptions } from "./comfyui/backend.ts";
export { DEFAULT_TXT2IMG_WORKFLOW } from "./comfyui/default-workflow.ts";
export { A1111Backend, describeA1111Error, type A1111Options } from "./a1111/backend.ts";
export { PoolBackend, type PoolMember, type PoolOptions, type PoolServerStats } from "./pool.ts";
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

import { PickrankError } from "@pickrank/contract";
import { registerBackend } from "./registry.ts";
import { ComfyUIBackend, type ComfyUIOptions } from "./comfyui/backend.ts";
import { A1111Backend, type A1111Options } from "./a1111/backend.ts";
import { createBackend } from "./registry.ts";
import { PoolBackend, type PoolMember, type PoolOptions } from "./pool.ts";
import type { Backend, BackendSpec } from "@pickrank/contract";

registerBackend("comfyui", (spec) => {
  const o: ComfyUIOptions = { ...(spec.options as ComfyUIOptions | undefined) };
  if (spec.auth !== undefined) o.auth = spec.auth;
  if (spec.workflow !== undefined) o.workflow = spec.workflow;
  return new ComfyUIBackend(spec.url, o);
});

registerBackend("a1111", (spec) => {
  const o: A1111Options = { ...(spec.options as A1111Options | undefined) };
  if (spec.auth !== undefined) o.auth = spec.auth;
  return new A1111Backend(spec.url, o);
});

/**
 * spec.options.backends: Backends, { backend, concurrency }, or specs ({ kind, url, … }) built through
 * the registry; the other options are PoolOptions. spec.url is not used.
 */
registerBackend("pool", (spec) => {
  const { backends, ...rest } = (spec.options ?? {}) as { backends?: unknown } & PoolOptions;
  if (!Array.isArray(backends) || backends.length === 0) {
    throw new PickrankError("BAD_INPUT", `Expected options.backends to be a non-empty array of backends or specs for kind "pool" but received ${Array.isArray(backends) ? "an empty array" : typeof backends}`, { details: { parameter: "options.backends" } });
  }
  const members = backends.map((b): Backend | PoolMember => {
    const o = b as Partial<BackendSpec & PoolMember & Backend>;
    if (typeof o.generate === "function" || (o.backend && typeof o.backend.generate === "function")) return b as Backend | PoolMember;
    const built = createBackend(b as BackendSpec);
    const c = (b as { concurrency?: number }).concurrency;
    return c === undefined ? built : { backend: built, concurrency: c };
  });
  return new PoolBackend(members, rest);
});
