import { defineConfig } from 'vitest/config';

// CI machines have 2 cores; tests that run real models need more than the 5 s default.
export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    include: ['test/**/*.test.ts'],
  },
});
