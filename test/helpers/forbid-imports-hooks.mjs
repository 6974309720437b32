// Module resolution hooks registered by forbid-imports.mjs.
let forbidden = [];

export function initialize(data) {
  forbidden = String(data).split(",").filter(Boolean);
}

export async function resolve(specifier, context, nextResolve) {
  if (forbidden.includes(specifier)) throw new Error(`forbidden import: ${specifier} (from ${context.parentURL ?? "?"})`);
  return nextResolve(specifier, context);
}
