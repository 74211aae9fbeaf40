#!/usr/bin/env node
// ONNX Runtime (onnxruntime-node, CPU) as the reference for a model's outputs in tests: runs MODEL.onnx on
// raw float32 inputs and writes every output as raw float32 plus its shape.
//
//   node tests/support/ort_run.mjs MODEL.onnx OUT_DIR NAME=FILE:D0xD1x... [NAME=FILE:SHAPE ...]
//
// Writes OUT_DIR/<i>.f32 (little-endian float32) and OUT_DIR/outputs.json ({input_type, outputs: [{name,
// shape, file}] in the model's output order}); an FP16 export is fed float16 (input_type says which). Exit status 4: onnxruntime-node is not installed (the caller skips with that reason).
import { createRequire } from 'node:module';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
// The benchmark's npm packages (bench/package.json, installed by scripts/setup.sh) hold onnxruntime-node.
const bench = path.join(here, '..', '..', 'bench', 'package.json');
let ort;
try {
  ort = createRequire(bench)('onnxruntime-node');
} catch (error) {
  console.error(`ort_run: onnxruntime-node is not installed (${error.message.split('\n')[0]})`);
  process.exit(4);
}

const [model, outDir, ...specs] = process.argv.slice(2);
if (!model || !outDir || specs.length === 0 || !existsSync(model)) {
  console.error('usage: node tests/support/ort_run.mjs MODEL.onnx OUT_DIR NAME=FILE:SHAPE ...');
  process.exit(2);
}
// IEEE half <-> single, for FP16 exports (their inputs and outputs are float16; Node has no Float16Array).
function toHalf(value) {
  const f32 = new Float32Array([value]);
  const bits = new Uint32Array(f32.buffer)[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = ((bits >>> 23) & 0xff) - 127 + 15;
  let mantissa = bits & 0x7fffff;
  if (exponent >= 0x1f) return sign | 0x7c00 | (((bits >>> 23) & 0xff) === 0xff && mantissa ? 0x200 : 0);
  if (exponent <= 0) {
    if (exponent < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - exponent;
    const rounded = (mantissa >>> shift) + ((mantissa >>> (shift - 1)) & 1);
    return sign | rounded;
  }
  const rounded = (exponent << 10) | (mantissa >>> 13);
  return sign | (rounded + ((mantissa >>> 12) & 1));  // round half up on the dropped bits
}
function fromHalf(bits) {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

const feeds = {};
const values = {};
for (const spec of specs) {
  const match = /^(.*)=(.*):([0-9x]+)$/.exec(spec);
  if (!match) {
    console.error(`ort_run: bad input '${spec}' (NAME=FILE:D0xD1...)`);
    process.exit(2);
  }
  const [, name, file, shapeText] = match;
  const shape = shapeText.split('x').map(Number);
  const bytes = readFileSync(file);
  const data = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  values[name] = { data: Float32Array.from(data), shape };
  feeds[name] = new ort.Tensor('float32', values[name].data, shape);
}
const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1, graphOptimizationLevel: 'all' });
let results;
let inputType = 'float32';
try {
  results = await session.run(feeds);
} catch (error) {
  if (!/expected: \(tensor\(float16\)\)/.test(error.message)) throw error;
  for (const [name, { data, shape }] of Object.entries(values))
    feeds[name] = new ort.Tensor('float16', Uint16Array.from(data, toHalf), shape);
  inputType = 'float16';
  results = await session.run(feeds);
}
const listing = session.outputNames.map((name, i) => {
  const tensor = results[name];
  const floats = tensor.type === 'float32'   ? tensor.data
                 : tensor.type === 'float16' ? Float32Array.from(tensor.data, fromHalf)
                                             : Float32Array.from(tensor.data, Number);
  const file = path.join(outDir, `${i}.f32`);
  writeFileSync(file, Buffer.from(floats.buffer, floats.byteOffset, floats.byteLength));
  return { name, shape: tensor.dims, file };
});
writeFileSync(path.join(outDir, 'outputs.json'), JSON.stringify({ input_type: inputType, outputs: listing }));
