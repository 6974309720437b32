/** The backend kinds this package registers: "comfyui", "a1111" and "pool" (imported once by index.ts). */
import { invalidParameter } from "@pickrank/contract";
import type { Backend, BackendSpec } from "@pickrank/contract";
import { A1111Backend, type A1111Options } from "./a1111/backend.ts";
import { ComfyUIBackend, type ComfyUIOptions } from "./comfyui/backend.ts";
import { PoolBackend, type PoolMember, type PoolOptions } from "./pool.ts";
import { createBackend, registerBackend } from "./registry.ts";

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
 * spec.options.backends: Backends, { backend, concurrency }, or specs ({ kind, url, … }, with an
 * optional concurrency) built through the registry; the other options are PoolOptions. spec.url is
 * not used; spec.auth, when given, goes to every member spec that has none.
 */
registerBackend("pool", (spec) => {
  const { backends, ...rest } = (spec.options ?? {}) as { backends?: unknown } & PoolOptions;
  if (!Array.isArray(backends) || backends.length === 0) {
    throw invalidParameter(
      "options.backends",
      `a non-empty array of backends or specs for kind "pool"`,
      Array.isArray(backends) ? "an empty array" : backends,
    );
  }
  const members = backends.map((b): Backend | PoolMember => {
    const o = b as Partial<BackendSpec & PoolMember & Backend>;
    if (typeof o.generate === "function" || (o.backend && typeof o.backend.generate === "function")) return b as Backend | PoolMember;
    const memberSpec = { ...(b as BackendSpec) };
    if (memberSpec.auth === undefined && spec.auth !== undefined) memberSpec.auth = spec.auth;
    const built = createBackend(memberSpec);
    const c = (b as { concurrency?: number }).concurrency;
    return c === undefined ? built : { backend: built, concurrency: c };
  });
  return new PoolBackend(members, rest);
});
