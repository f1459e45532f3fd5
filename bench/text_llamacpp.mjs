// text_llamacpp.mjs -- llama.cpp's CPU backend (node-llama-cpp 3.21.1, prebuilt) as the LLM
// prefill peer of bench/text.sh: one prompt of T random token ids evaluated in one batch on a
// fresh sequence, best of REPS after one warm-up.
//   node text_llamacpp.mjs MODEL.gguf T THREADS REPS   ->  "RESULT <seconds>"
// Run from the directory holding node_modules (build/llamacpp): the package is resolved from there.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const { getLlama } = await import(pathToFileURL(createRequire(process.cwd() + "/").resolve("node-llama-cpp")));

const [model, T, threads, reps] = [process.argv[2], +process.argv[3], +process.argv[4], +process.argv[5]];
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error", maxThreads: threads });
const m = await llama.loadModel({ modelPath: model, gpuLayers: 0 });
const ctx = await m.createContext({ contextSize: Math.max(T + 16, 64), batchSize: T, threads, sequences: 1 });
const seq = ctx.getSequence();
let r = 88172645463325252n;
const tokens = [];
for (let i = 0; i < T; i++) {
    r ^= (r << 13n) & 0xffffffffffffffffn; r ^= r >> 7n; r ^= (r << 17n) & 0xffffffffffffffffn;
    tokens.push(259 + Number(r % 3000n)); // normal pieces of the placeholder vocabulary
}
let best = Infinity;
for (let i = 0; i <= reps; i++) {
    await seq.clearHistory();
    const t0 = process.hrtime.bigint();
    await seq.evaluateWithoutGeneratingNewTokens(tokens);
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    if (i > 0 && dt < best) best = dt;
}
console.log(`RESULT ${best.toFixed(4)}`);
await ctx.dispose();
await m.dispose();
await llama.dispose();
