import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "test/**/*.test.ts", "examples/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Model sessions and sharp both use native threads; two cores here, so keep workers few.
    pool: "forks",
    maxWorkers: 2,
  },
});
