/**
 * Parse + check time: ResNet-50 warm (median of many runs) and generated chains of 1,000 and
 * 10,000 layers, to show that growth is linear. Prints a Markdown table.
 */
import { readFileSync } from 'node:fs';
import { check } from '../src/index.ts';

function time(fn: () => void, runs: number): { median: number; min: number; max: number } {
  for (let i = 0; i < Math.min(5, runs); i++) fn(); // warm up the JIT
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    fn();
    samples.push(performance.now() - t);
  }
  samples.sort((a, b) => a - b);
  return { median: samples[Math.floor(runs / 2)], min: samples[0], max: samples[runs - 1] };
}

const chain = (n: number) => `model chain${n} {\n  input 16x32x32\n${Array.from({ length: n }, (_, i) => `  ${i ? '-> ' : ''}${i % 2 ? 'relu' : 'conv 16 3x3 pad=same'}`).join('\n')}\n}\n`;

export function parseBench(): string {
  const cases = [
    { name: 'ResNet-50 (examples/zoo/resnet50.cnn)', text: readFileSync('examples/zoo/resnet50.cnn', 'utf8'), runs: 200 },
    { name: 'chain of 1,000 layers', text: chain(1000), runs: 50 },
    { name: 'chain of 10,000 layers', text: chain(10_000), runs: 15 },
  ];
  const rows = cases.map((c) => {
    const layers = [...check(c.text).models[0].root.items].length;
    const t = time(() => check(c.text), c.runs);
    return `| ${c.name} | ${c.text.length.toLocaleString('en-US')} | ${t.median.toFixed(2)} | ${t.min.toFixed(2)} – ${t.max.toFixed(2)} | ${c.runs} |`;
  });
  return ['| input | chars | median ms | range ms | runs |', '|---|---:|---:|---:|---:|', ...rows].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(parseBench());
