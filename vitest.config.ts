import { configDefaults, defineConfig } from "vitest/config";

// The tests run the TypeScript sources: the workspace packages' "development" export condition points
// at src/ (their default export is the built dist/, which the tests never need).
const conditions = ["development"];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: conditions } },
  test: {
    include: ["packages/*/test/**/*.test.ts", "test/**/*.test.ts", "examples/**/*.test.ts"],
    exclude: [...configDefaults.exclude, "**/dist/**"],
    // Removes the temp folders a test file registered (test/helpers/temp-dirs.ts) after its last test.
    setupFiles: ["test/helpers/setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Model sessions and sharp both use native threads; two cores here, so keep workers few.
    pool: "forks",
    maxWorkers: 2,
    // Node's own resolution (worker threads, modules vitest leaves to Node) gets the condition too.
    execArgv: ["--conditions=development"],
  },
});
