// `node --import ./test/helpers/forbid-imports.mjs …`: importing any module named in
// $PICKRANK_FORBID_IMPORTS (bare specifiers, comma-separated) fails with "forbidden import: <name>",
// so a test can show that a command never loads them (test/cli/bin.test.ts).
import { register } from "node:module";

register("./forbid-imports-hooks.mjs", import.meta.url, { data: process.env.PICKRANK_FORBID_IMPORTS ?? "" });
