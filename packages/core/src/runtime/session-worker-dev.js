// Entry of the ONNX Runtime session worker when pickrank runs from its TypeScript sources (the tests,
// `pnpm pickrank` in the repository): registers tsx in this thread, then runs session-worker.ts. Built
// packages start the compiled dist/runtime/session-worker.js instead and never load this file.
import { register } from "tsx/esm/api";

register();
await import("./session-worker.ts");
