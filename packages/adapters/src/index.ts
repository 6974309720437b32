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
} from "./types.ts";
export { backendKinds, createBackend, registerBackend } from "./registry.ts";
export { parseEndpoint, redactUrl } from "./http.ts";
export { resolveSeeds } from "./util.ts";
export { ComfyClient, describeComfyError, type ComfyClientOptions } from "./comfyui/client.ts";
export { ComfyUIBackend, type ComfyUIOptions } from "./comfyui/backend.ts";
export { DEFAULT_TXT2IMG_WORKFLOW } from "./comfyui/default-workflow.ts";
export { A1111Backend, describeA1111Error, type A1111Options } from "./a1111/backend.ts";
export { applyWorkflow, detectWorkflow, parseWorkflow, type ComfyWorkflow, type InputRef, type NodeOverrides, type WorkflowPlan } from "./comfyui/workflow.ts";

import { registerBackend } from "./registry.ts";
import { ComfyUIBackend, type ComfyUIOptions } from "./comfyui/backend.ts";
import { A1111Backend, type A1111Options } from "./a1111/backend.ts";

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
