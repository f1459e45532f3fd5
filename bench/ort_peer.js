// Times an ONNX model of bench/speed_peer.py with onnxruntime-node on a raw float32 input:
//   node bench/ort_peer.js MODEL.onnx INPUT.f32 INPUT_NAME SHAPE THREADS REPS
// SHAPE like 1,160000 or 8,3,224,224 (NODE_PATH: where onnxruntime-node is). Prints the best and
// median seconds of session.run after one warm-up run, and "RESULT s S".
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [model, input, name, shape, threads, reps] = process.argv.slice(2);
  const dims = shape.split(',').map(Number);
  const buf = fs.readFileSync(input);
  const n = dims.reduce((a, b) => a * b, 1);
  if (buf.length !== 4 * n) throw new Error(`${input}: ${buf.length} bytes, expected ${4 * n} for shape ${shape}`);
  const x = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
  const sess = await ort.InferenceSession.create(model, {
    intraOpNumThreads: Number(threads), interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: 'all'});
  const feeds = {[name]: new ort.Tensor('float32', x, dims)};
  const first = await sess.run(feeds);  // warm-up
  // ORT_DUMP=FILE: the first output as raw float32, for the accuracy comparison
  // (bench/speed_peer.py peer_accuracy)
  if (process.env.ORT_DUMP) {
    const o = first[sess.outputNames[0]].data;
    fs.writeFileSync(process.env.ORT_DUMP, Buffer.from(o.buffer, o.byteOffset, o.byteLength));
  }
  const times = [];
  for (let r = 0; r < Number(reps); r++) {
    const t0 = process.hrtime.bigint();
    await sess.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  times.sort((a, b) => a - b);
  console.log(`onnxruntime-node ${model.split('/').pop()}, ${threads} intra-op threads: best ` +
              `${times[0].toFixed(3)} s, median ${times[times.length >> 1].toFixed(3)} s`);
  console.log(`RESULT s ${times[0].toFixed(4)}`);
}
main().catch((e) => { console.error(`ort_peer.js: ${e.message || e}`); process.exit(1); });
