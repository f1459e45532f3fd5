// Times an ONNX model of bench/ort_peer.py with onnxruntime-node on a 16-bit mono WAV:
//   node bench/ort_peer.js MODEL.onnx WAV THREADS REPS   (NODE_PATH: where onnxruntime-node is)
// prints the best and median seconds of session.run and "RESULT ort_best_s S".
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [model, wav, threads, reps] = process.argv.slice(2);
  const buf = fs.readFileSync(wav);
  const n = (buf.length - 44) / 2;
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = buf.readInt16LE(44 + 2 * i) / 32768;
  let mean = 0, v = 0;
  for (let i = 0; i < n; i++) mean += x[i];
  mean /= n;
  for (let i = 0; i < n; i++) v += (x[i] - mean) * (x[i] - mean);
  const inv = 1 / Math.sqrt(v / n + 1e-7);
  for (let i = 0; i < n; i++) x[i] = (x[i] - mean) * inv;
  const sess = await ort.InferenceSession.create(model, {
    intraOpNumThreads: Number(threads), interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: 'all'});
  const feeds = {wave: new ort.Tensor('float32', x, [1, n])};
  await sess.run(feeds);  // warm-up
  const times = [];
  for (let r = 0; r < Number(reps); r++) {
    const t0 = process.hrtime.bigint();
    await sess.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  times.sort((a, b) => a - b);
  console.log(`onnxruntime-node ${model.split('/').pop()}, ${threads} intra-op threads: best ` +
              `${times[0].toFixed(3)} s, median ${times[times.length >> 1].toFixed(3)} s`);
  console.log(`RESULT ort_best_s ${times[0].toFixed(4)}`);
}
main().catch((e) => { console.error(e.message || e); process.exit(1); });
