// Entry of the preprocessing worker when pickrank runs from its TypeScript sources (the tests,
// `pnpm pickrank` in the repository): registers tsx in this thread, then runs worker.ts. Built
// packages start the compiled dist/preprocess/worker.js instead and never load this file.
import { register } from "tsx/esm/api";

register();
await import("./worker.ts");
