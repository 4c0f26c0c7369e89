/**
 * Parse + check time: ResNet-50 warm (median of many runs) and generated chains of 1,000, 10,000
 * and 20,000 layers, to show that growth is linear (µs per layer flat). Each row gives wall-clock
 * time and the process's CPU time (all threads, garbage collector included): on a machine shared
 * with other work, a long run is preempted more often than a short one, so wall time grows faster
 * than the work does while CPU time does not. Prints a Markdown table.
 */
import { readFileSync } from 'node:fs';
import { check } from '../src/index.ts';
import { layers } from '../src/compiler/model.ts';

interface Timing { median: number; min: number; max: number; cpu: number }

function time(fn: () => void, runs: number): Timing {
  for (let i = 0; i < Math.min(5, runs); i++) fn(); // warm up the JIT
  const samples: number[] = [];
  const cpuSamples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c = process.cpuUsage();
    const t = performance.now();
    fn();
    samples.push(performance.now() - t);
    const used = process.cpuUsage(c);
    cpuSamples.push((used.user + used.system) / 1000);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  samples.sort((a, b) => a - b);
  return { median: median(samples), min: samples[0], max: samples[runs - 1], cpu: median(cpuSamples) };
}

const chain = (n: number) => `model chain${n} {\n  input 16x32x32\n${Array.from({ length: n }, (_, i) => `  ${i ? '-> ' : ''}${i % 2 ? 'relu' : 'conv 16 3x3 pad=same'}`).join('\n')}\n}\n`;

export function parseBench(): string {
  const cases = [
    { name: 'ResNet-50 (examples/zoo/resnet50.cnn)', text: readFileSync('examples/zoo/resnet50.cnn', 'utf8'), runs: 200 },
    { name: 'chain of 1,000 layers', text: chain(1000), runs: 50 },
    { name: 'chain of 10,000 layers', text: chain(10_000), runs: 15 },
    { name: 'chain of 20,000 layers', text: chain(20_000), runs: 9 },
  ];
  const rows = cases.map((c) => {
    const count = layers(check(c.text).models[0].root).length;
    const t = time(() => check(c.text), c.runs);
    const perLayer = (ms: number) => ((ms * 1000) / count).toFixed(1);
    return `| ${c.name} | ${c.text.length.toLocaleString('en-US')} | ${count.toLocaleString('en-US')} | ${t.median.toFixed(2)} | ${t.min.toFixed(2)} – ${t.max.toFixed(2)} | ${perLayer(t.median)} | ${t.cpu.toFixed(2)} | ${perLayer(t.cpu)} | ${c.runs} |`;
  });
  return ['| input | chars | layers | median ms | range ms | µs/layer | CPU ms (median) | CPU µs/layer | runs |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|', ...rows].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(parseBench());
