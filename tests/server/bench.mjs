// bench.mjs: generation throughput of `tandem serve` with 1 stream against N concurrent greedy streams, and time
// to first token with and without load. Not part of the test suite (it needs a realistic model and quiet cores).
//
//   TANDEM_BIN=build/tandem TND_SHARED_DIR=../shared node tests/server/bench.mjs MODEL.gguf [--threads 2]
//       [--streams 4] [--tokens 128] [--repeats 3] [--server "ARGS"]
//
// --server passes more options to the server, e.g. --server "--spec ngram" for speculative decoding.
//
// A 1.1B-shaped model: tandem model make --shape tinyllama-1.1b --type Q4_0 -o tinyllama-q4_0.gguf
import OpenAI from 'openai';
import { startServer, metrics } from './lib.mjs';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const model = args[0];
if (!model || model.startsWith('--')) {
  console.error('usage: node bench.mjs MODEL.gguf [--threads 2] [--streams 4] [--tokens 128] [--repeats 3]');
  process.exit(2);
}
const threads = opt('--threads', '2');
const streams = Number(opt('--streams', '4'));
const tokens = Number(opt('--tokens', '128'));
const repeats = Number(opt('--repeats', '3'));
const extra = opt('--server', '').split(' ').filter((a) => a);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// One greedy stream; resolves to the times of its first and last token and the count (end-of-sequence banned so
// that every stream generates exactly `tokens`).
async function stream(client, prompt) {
  const t0 = performance.now();
  let first = 0;
  let last = 0;
  let n = 0;
  const s = await client.completions.create({
    model: 'm', prompt, max_tokens: tokens, temperature: 0, logit_bias: { 2: -100 }, stream: true,
    stream_options: { include_usage: true },
  });
  for await (const ch of s) {
    if (ch.usage) n = ch.usage.completion_tokens;
    if (ch.choices.length && ch.choices[0].text) {
      last = performance.now();
      if (!first) first = last;
    }
  }
  return { t0, first, last, n };
}

const server = await startServer(['-m', model, '-t', threads, '--parallel', String(streams), '-c', '1024', ...extra],
  { name: 'bench' });
const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 600000 });
const prompts = Array.from({ length: streams }, (_, i) => `Story number ${i + 1}: once upon a time, in a land far away,`);
try {
  await stream(client, 'warm up'); // page the weights in
  // the engine's own view of a phase: forward steps, their time and the tokens generated
  const phase = { single: { steps: 0, secs: 0, gen: 0 }, many: { steps: 0, secs: 0, gen: 0 } };
  const measure = async (into, run) => {
    const m0 = await metrics(server.url);
    const result = await run();
    const m = await metrics(server.url);
    into.steps += m.tandem_forward_steps_total - m0.tandem_forward_steps_total;
    into.secs += m.tandem_forward_seconds_total - m0.tandem_forward_seconds_total;
    into.gen += m.tandem_generated_tokens_total - m0.tandem_generated_tokens_total;
    return result;
  };
  const describe = (p) => `${((1000 * p.secs) / p.steps).toFixed(1)} ms per forward step, ` +
    `${(p.gen / p.secs).toFixed(2)} tokens per forward second`;
  const single = [];
  const ttftIdle = [];
  const aggregate = [];
  const ttftLoaded = [];
  const ttftJoin = [];
  // the two settings alternate, so that a change in the machine's load affects both alike
  for (let r = 0; r < repeats; r++) {
    const s = await measure(phase.single, () => stream(client, `${prompts[r % streams]} (${r})`));
    single.push((s.n - 1) / ((s.last - s.first) / 1000));
    ttftIdle.push(s.first - s.t0);
    const all = await measure(phase.many, () => Promise.all(prompts.map((p) => stream(client, `${p} (${r})`))));
    const start = Math.min(...all.map((x) => x.first));
    const end = Math.max(...all.map((x) => x.last));
    aggregate.push(all.reduce((sum, x) => sum + x.n - 1, 0) / ((end - start) / 1000));
    ttftLoaded.push(...all.map((x) => x.first - x.t0));
    // a request that arrives while streams - 1 others are generating
    const busy = prompts.slice(1).map((p) => stream(client, `${p} (busy ${r})`));
    await new Promise((res) => setTimeout(res, 500));
    const late = await stream(client, `${prompts[0]} and a late request (${r})`);
    ttftJoin.push(late.first - late.t0);
    await Promise.all(busy);
  }
  const engineSingle = describe(phase.single);
  const engineMany = describe(phase.many);
  const one = median(single);
  const many = median(aggregate);
  console.log(`model ${model} ${extra.join(' ')}, ${threads} threads, ${tokens} tokens per stream, median of ${repeats}`);
  console.log(`1 stream:        ${one.toFixed(2)} tokens/s (engine: ${engineSingle})`);
  console.log(`${streams} streams:       ${many.toFixed(2)} tokens/s aggregate (${(many / one).toFixed(2)}x one stream; ` +
    `engine: ${engineMany})`);
  console.log(`time to first token: idle ${median(ttftIdle).toFixed(0)} ms, ${streams} arriving together ` +
    `${median(ttftLoaded).toFixed(0)} ms (max ${Math.max(...ttftLoaded).toFixed(0)}), joining ${streams - 1} ` +
    `running streams ${median(ttftJoin).toFixed(0)} ms`);
} finally {
  await server.stop();
}
