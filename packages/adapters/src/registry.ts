import { PickrankError, invalidParameter } from "@pickrank/contract";
import type { Backend, BackendFactory, BackendSpec } from "@pickrank/contract";

const factories = new Map<string, BackendFactory>();

/** Adds a backend kind; later registrations of the same kind replace earlier ones (tests, plugins). */
export function registerBackend(kind: string, factory: BackendFactory): void {
  if (typeof kind !== "string" || !/^[a-z][a-z0-9-]*$/.test(kind)) throw invalidParameter("kind", 'a lower-case name like "comfyui"', kind);
  if (typeof factory !== "function") throw invalidParameter("factory", "a function (spec) => Backend", factory);
  factories.set(kind, factory);
}

/** The kinds registered with registerBackend ("a1111", "comfyui", "pool" …), sorted. */
export function backendKinds(): string[] {
  return [...factories.keys()].sort();
}

/** Looks the kind up in the registry and builds the backend (throws BAD_INPUT for a bad spec). */
export function createBackend(spec: BackendSpec): Backend {
  if (spec === null || typeof spec !== "object")
    throw invalidParameter("spec", "an object { kind, url, auth?, workflow?, options? }", spec);
  const factory = factories.get(spec.kind);
  if (factory === undefined) {
    throw new PickrankError(
      "BAD_INPUT",
      `Expected one of ${backendKinds()
        .map((k) => JSON.stringify(k))
        .join(", ")} for kind but received ${JSON.stringify(spec.kind)}`,
      {
        details: { parameter: "kind", known: backendKinds() },
      },
    );
  }
  return factory(spec);
}
