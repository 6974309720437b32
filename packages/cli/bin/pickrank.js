#!/usr/bin/env node
// The package's bin. It imports the package itself: the compiled dist/main.js, or, under
// `node --conditions=development --import tsx` (`pnpm pickrank` in the repository, the tests),
// the TypeScript sources. Heavy modules (onnxruntime-node, sharp) load only in the commands that use them.
import { main } from "pickrank";

process.exitCode = await main(process.argv);
