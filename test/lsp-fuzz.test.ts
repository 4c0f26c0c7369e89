/**
 * The language server under random traffic (scripts/lsp-fuzz-driver.ts): the real process over
 * stdio, a seeded sequence of edits and requests of every kind, well formed or not, and the inputs
 * that once stopped it (a 5 MB document, 1,000 edits at once, nested repeats of 10,000, lone `\r`).
 * Every request must be answered, no published range may leave its text, the process must stay up
 * and small, and it must exit with status 0 after shutdown and exit. `npm run fuzz:lsp` runs longer.
 */
import { describe, expect, it } from 'vitest';
import { runLspFuzz } from '../scripts/lsp-fuzz-driver.ts';

describe('cnnc lsp --stdio under random traffic', () => {
  it('answers every request, publishes ranges inside the text, stays under 1 GB and exits cleanly', async () => {
    const report = await runLspFuzz({ seed: 20_251_130, count: 4000 });
    console.log(`lsp fuzz: ${report.requests} requests, ${report.notifications} notifications, ${report.diagnosticsChecked} diagnostics checked, ` +
      `RSS ${report.rssMB.afterInit} -> max ${report.rssMB.max} -> ${report.rssMB.end} MB, exit in ${report.exitMs} ms, ${report.wallMs} ms in all`);
    expect(report.failures).toEqual([]);
    const answered = Object.values(report.answers).reduce((a, b) => a + b, 0);
    expect(answered).toBe(report.requests);
    expect(report.answers['error -32602']).toBeGreaterThan(0); // the malformed params were refused as such
    expect(report.answers['error -32601']).toBeGreaterThan(0); // and the unknown methods
    expect(report.answers.result).toBeGreaterThan(report.requests / 2);
    expect(report.diagnosticsChecked).toBeGreaterThan(100);
    expect(report.rssMB.max).toBeLessThan(1024);
    expect(report.exitCode).toBe(0);
  }, 120_000);
});
