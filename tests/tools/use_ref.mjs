// use_ref.mjs - the JavaScript reference of the use-lite embedder, for
// tests/unit/test_use_lite.c: @energetic-ai/embeddings 0.2.0 on
// @energetic-ai/core 0.2.0 (TensorFlow.js, WASM backend), run on the same
// model files as the C encoder.
//
//   node use_ref.mjs DEPS_DIR MODEL_DIR IN OUT
//
// DEPS_DIR holds node_modules/ with the two packages (tools/fetch-model.sh
// --reference installs them); MODEL_DIR holds model.json, its shards and
// vocab.json. IN has one text per line, base64 of its bytes (decoded as
// UTF-8 by Buffer.toString, invalid bytes becoming U+FFFD). OUT gets one JSON
// object per line: {"ids": [...], "vec": [...]} or, where the reference
// throws (the empty text), {"ids": [...], "error": "..."}. Texts are
// embedded one by one, as the daemon does.
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const [depsDir, modelDir, inFile, outFile] = process.argv.slice(2);
if (!outFile) {
  console.error('usage: node use_ref.mjs DEPS_DIR MODEL_DIR IN OUT');
  process.exit(2);
}
const require = createRequire(path.resolve(depsDir) + '/');
const core = require('@energetic-ai/core');
const { initModel } = require('@energetic-ai/embeddings');

const source = async () => ({
  model: await core.loadGraphModel('file://' + path.resolve(modelDir, 'model.json')),
  vocabulary: JSON.parse(readFileSync(path.resolve(modelDir, 'vocab.json'), 'utf-8')),
});
const model = await initModel(source);
const lines = readFileSync(inFile, 'utf-8').split('\n');
if (lines[lines.length - 1] === '') lines.pop();
const out = [];
for (const line of lines) {
  const text = Buffer.from(line, 'base64').toString('utf8');
  const rec = { ids: model.tokenizer.encode(text) };
  try {
    rec.vec = Array.from((await model.embed([text]))[0]);
  } catch (e) {
    rec.error = String(e.message || e);
  }
  out.push(JSON.stringify(rec));
}
writeFileSync(outFile, out.join('\n') + '\n');
