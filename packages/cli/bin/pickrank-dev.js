// The bin from the TypeScript sources, for `pnpm pickrank …` in the repository and for the tests that
// start a process; run it as `node --conditions=development packages/cli/bin/pickrank-dev.js …` (the
// condition makes the workspace packages resolve to their src/). It registers tsx, then, when pnpm
// started it (INIT_CWD is the folder pnpm was called from; pnpm runs scripts in the repository root),
// moves back to the caller's folder so relative paths mean what they mean with the installed bin.
// Not part of the published package, which runs the compiled dist/ through bin/pickrank.js.
import { register } from "tsx/esm/api";

register();
if (process.env.INIT_CWD) process.chdir(process.env.INIT_CWD);
await import("./pickrank.js");
