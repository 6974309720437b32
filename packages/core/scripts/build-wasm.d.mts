/** Source file of the kernels and the generated module, relative to packages/core. */
export const SOURCE: string;
export const OUTPUT: string;
/** The asc flags the kernels are built with. */
export const ASC_FLAGS: string[];
/** Compiles wasm/resample.ts (AssemblyScript) and returns the .wasm bytes; throws when asc fails. */
export function compileResampleWasm(): Promise<Buffer>;
/** The generated TypeScript module (resample-wasm-bytes.ts) holding `bytes` as base64. */
export function renderBytesModule(bytes: Buffer): string;
