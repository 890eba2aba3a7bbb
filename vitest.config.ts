import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: {
    // Tests (and the README example) import the package by its public names.
    alias: {
      "mamkit/testing": fileURLToPath(new URL("./src/testing/index.ts", import.meta.url)),
      mamkit: fileURLToPath(new URL("./src/index.ts", import.meta.url)),
    },
  },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 20000,
  },
});
