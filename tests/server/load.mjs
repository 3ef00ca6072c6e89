// load.mjs: a load run of `tandem serve`: N clients stream chat and text completions back to back for a while,
// with varied prompts (some sharing a long prefix), lengths, sampling settings, stop strings and logprobs. Passes
// when no request failed and the server's resident memory did not grow after the warm-up. Not part of the test
// suite (it takes minutes); figures are printed at the end.
//
//   TANDEM_BIN=build/tandem TND_SHARED_DIR=../shared node tests/server/load.mjs [--seconds 120] [--clients 8]
//       [--model PATH] [--threads 2] [--parallel 4]
import fs from 'node:fs';
import OpenAI from 'openai';
import { startServer, fixture, metrics } from './lib.mjs';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const seconds = Number(opt('--seconds', '120'));
const clients = Number(opt('--clients', '8'));
const model = opt('--model', fixture('real/stories260K.gguf'));
const WARMUP_S = Math.min(15, seconds / 4);
const RSS_GROWTH_LIMIT_KB = 16 * 1024;

const server = await startServer(['-m', model, '--chat-template', 'chatml', '-c', '1024', '-t', opt('--threads', '2'),
  '--parallel', opt('--parallel', '4'), '--max-queue', String(clients * 2)], { name: 'load' });
const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 300000 });

function rssKb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const pick = (xs) => xs[Math.floor(rand() * xs.length)];

const system = 'You are a storyteller. Stories are short, kind and simple, for small children. '.repeat(4);
const topics = ['a cat', 'a red ball', 'the sea', 'a big tree', 'two friends', 'a lost dog', 'the moon', 'a cake'];

// One random request, streamed; throws on anything wrong. Resolves to { ttft, tokens }.
async function oneRequest() {
  const chat = rand() < 0.5;
  const common = {
    model: 'm', stream: true, stream_options: { include_usage: true }, max_tokens: 16 + Math.floor(rand() * 240),
    temperature: pick([0, 0.7, 1]), seed: Math.floor(rand() * 1e6),
  };
  if (rand() < 0.2) common.stop = ['.', '!'];
  const t0 = performance.now();
  const s = chat
    ? await client.chat.completions.create({
      ...common, logprobs: rand() < 0.2, messages: [{ role: 'system', content: system },
        { role: 'user', content: `Tell me about ${pick(topics)}.` }],
    })
    : await client.completions.create({ ...common, prompt: `Once upon a time there was ${pick(topics)}` });
  let ttft = 0;
  let finish = null;
  let usage = null;
  for await (const ch of s) {
    if (ch.usage) usage = ch.usage;
    if (!ch.choices.length) continue;
    const c = ch.choices[0];
    if (!ttft && (c.text || c.delta?.content)) ttft = performance.now() - t0;
    if (c.finish_reason) finish = c.finish_reason;
  }
  if (!['stop', 'length'].includes(finish)) throw new Error(`stream ended without a finish reason (${finish})`);
  if (!usage || usage.completion_tokens > common.max_tokens) throw new Error('bad usage');
  return { ttft, tokens: usage.completion_tokens };
}

const end = Date.now() + seconds * 1000;
const warmEnd = Date.now() + WARMUP_S * 1000;
const stats = { requests: 0, errors: 0, tokens: 0, ttft: [], messages: new Map() };
const rss = [];
const sampler = setInterval(() => rss.push({ t: Date.now(), kb: rssKb(server.proc.pid) }), 1000);

async function clientLoop() {
  while (Date.now() < end) {
    try {
      const r = await oneRequest();
      stats.requests++;
      stats.tokens += r.tokens;
      if (r.ttft) stats.ttft.push(r.ttft);
    } catch (e) {
      stats.errors++;
      const key = String(e.message).slice(0, 120);
      stats.messages.set(key, (stats.messages.get(key) ?? 0) + 1);
    }
  }
}

const t0 = Date.now();
await Promise.all(Array.from({ length: clients }, clientLoop));
const wall = (Date.now() - t0) / 1000;
clearInterval(sampler);
const m = await metrics(server.url);
const code = await server.stop();

const afterWarm = rss.filter((s) => s.t >= warmEnd);
const rssStart = afterWarm.length ? afterWarm[0].kb : rss[0].kb;
const rssMax = Math.max(...rss.map((s) => s.kb));
const rssEnd = rss[rss.length - 1].kb;
const sorted = [...stats.ttft].sort((a, b) => a - b);
const q = (p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : 0);
console.log(`load run: ${clients} streaming clients for ${wall.toFixed(0)} s against ${model}`);
console.log(`requests ${stats.requests}, errors ${stats.errors}, generated tokens ${stats.tokens} ` +
  `(${(stats.tokens / wall).toFixed(1)} tokens/s)`);
console.log(`time to first token: median ${q(0.5).toFixed(0)} ms, p95 ${q(0.95).toFixed(0)} ms, max ${q(1).toFixed(0)} ms`);
console.log(`server RSS: ${(rss[0].kb / 1024).toFixed(1)} MiB at start, ${(rssStart / 1024).toFixed(1)} MiB after ` +
  `${WARMUP_S} s warm-up, max ${(rssMax / 1024).toFixed(1)} MiB, end ${(rssEnd / 1024).toFixed(1)} MiB`);
console.log(`server: ${m['tandem_requests_total{status="200"}'] ?? 0} answered 200, prompt tokens ` +
  `${m.tandem_prompt_tokens_total} (${m.tandem_prompt_tokens_cached_total} from the prefix cache), exit code ${code}`);
for (const [msg, n] of stats.messages) console.log(`  error x${n}: ${msg}`);
const ok = stats.errors === 0 && rssEnd - rssStart <= RSS_GROWTH_LIMIT_KB && code === 0 && stats.requests > 0;
console.log(ok ? 'PASS' : 'FAIL');
process.exit(ok ? 0 : 1);
