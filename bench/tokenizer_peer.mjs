// Peer of bench/tokenizer.sh: lines/s of transformers.js (tests/fixtures/text/node) over the
// corpus, best of REPS passes. Usage: node tokenizer_peer.mjs CORPUS REPS DIR...
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const [corpus, repsArg, ...dirs] = process.argv.slice(2);
const root = path.resolve(path.dirname(corpus));
const require = createRequire(path.join(root, 'node', 'package.json'));
const tf = await import(require.resolve('@huggingface/transformers'));
tf.env.allowRemoteModels = false;
tf.env.localModelPath = root + '/';
const texts = fs.readFileSync(corpus, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l));
for (const d of dirs) {
  const tok = await tf.AutoTokenizer.from_pretrained(path.basename(d), { local_files_only: true });
  let best = 1e30, total = 0;
  for (let r = 0; r < Number(repsArg); r++) {
    total = 0;
    const t0 = process.hrtime.bigint();
    for (const t of texts) total += tok.encode(t, { add_special_tokens: false }).length;
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    best = Math.min(best, dt);
  }
  console.log(`${d} ${(texts.length / best).toFixed(0)} ${total}`);
}
