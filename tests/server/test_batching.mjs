// test_batching.mjs: continuous batching must not change what a request gets. Greedy completions of several
// prompts, sent all at once to a server that batches 4 sequences and prefills in small chunks, must equal exactly
// what a fresh single-sequence server gives each prompt alone; so must repeats served from the prefix cache, and
// requests that share a long prompt prefix computed by another request.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer, fixture, metrics, post } from './lib.mjs';

// stories260K is float32 (one dot product per row and token); llama-tiny-q8_0 also runs the quantized kernels,
// whose tiles cover several tokens of a batch at once.
const MODELS = ['real/stories260K.gguf', 'models/llama-tiny-q8_0.gguf'];

const story = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her ' +
  'friends. One day, she saw a big red ball under a tree. ';
const PROMPTS = [
  'Tom',
  'Once upon a time',
  'The cat sat on the mat and looked at the bird.',
  story,
  story + story + 'Lily said',
  'Sue and Ben were friends. They liked to build with blocks. ',
  story + 'Then a dog came and',
  'A boy found a shiny stone by the river. He',
];
const MAX_TOKENS = 40;

function clientOf(server) {
  return new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 120000 });
}

// One greedy completion, streamed or not, with the log-probability of every token: logits that depend on the
// batch would show in these floats even where the greedy choice does not change. Resolves to { text, logprobs,
// usage }.
async function complete(client, prompt, stream) {
  const req = { model: 'm', prompt, max_tokens: MAX_TOKENS, temperature: 0, logprobs: 1 };
  if (!stream) {
    const r = await client.completions.create(req);
    return { text: r.choices[0].text, logprobs: r.choices[0].logprobs.token_logprobs, usage: r.usage };
  }
  let text = '';
  let usage = null;
  const logprobs = [];
  for await (const ch of await client.completions.create({ ...req, stream: true, stream_options: { include_usage: true } })) {
    if (ch.usage) usage = ch.usage;
    if (!ch.choices.length) continue;
    text += ch.choices[0].text;
    if (ch.choices[0].logprobs) logprobs.push(...ch.choices[0].logprobs.token_logprobs);
  }
  return { text, logprobs, usage };
}

// Asserts that a run equals the solo run exactly: text and every log-probability.
function assertSame(run, solo, what) {
  assert.equal(run.text, solo.text, `${what}: text`);
  assert.deepEqual(run.logprobs, solo.logprobs, `${what}: log-probabilities`);
}

// What each prompt gives alone on a fresh server with one sequence: no batching, no prefix cache.
async function references(model, prompts) {
  const out = [];
  for (const p of prompts) {
    const s = await startServer(['-m', fixture(model), '-c', '512', '--parallel', '1', '-t', '1'], { name: 'alone' });
    out.push(await complete(clientOf(s), p, false));
    assert.equal(await s.stop(), 0);
  }
  return out;
}

for (const model of MODELS) {
  test(`batched, chunk-prefilled and cached requests equal solo runs: ${model}`, async () => {
    const alone = await references(model, PROMPTS);
    const server = await startServer(['-m', fixture(model), '-c', '512', '--parallel', '4', '-b', '24', '-t', '1'],
      { name: 'batch' });
    const client = clientOf(server);
    try {
      const m0 = await metrics(server.url);
      // all at once: 4 run together, 4 wait for a slot; half are streamed
      const together = await Promise.all(PROMPTS.map((p, i) => complete(client, p, i % 2 === 1)));
      const m1 = await metrics(server.url);
      const steps = m1.tandem_forward_steps_total - m0.tandem_forward_steps_total;
      const generated = m1.tandem_generated_tokens_total - m0.tandem_generated_tokens_total;
      assert.ok(generated >= PROMPTS.length, 'tokens were generated');
      assert.ok(steps < generated, `sequences shared forward steps (${steps} steps for ${generated} tokens)`);
      together.forEach((r, i) => assertSame(r, alone[i], `prompt ${i} batched`));
      // one by one again: the prompts now come from the slots' caches
      let cached = 0;
      for (let i = 0; i < PROMPTS.length; i++) {
        const r = await complete(client, PROMPTS[i], i % 2 === 0);
        assertSame(r, alone[i], `prompt ${i} repeated`);
        cached += r.usage.prompt_tokens_details.cached_tokens;
      }
      assert.ok(cached > 0, 'repeated prompts reused cached tokens');
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });
}

test('a long shared prefix is computed once and forked into concurrent requests', async () => {
  const model = MODELS[0];
  const prefix = story + story + story;
  const prompts = ['Lily asked her mom', 'The ball rolled away and', 'Her friend Max said', 'Then the sun', 'A bird'].map(
    (q) => prefix + q);
  const alone = await references(model, prompts);
  const server = await startServer(['-m', fixture(model), '-c', '512', '--parallel', '4', '-b', '32', '-t', '1'],
    { name: 'prefix' });
  const client = clientOf(server);
  try {
    const tokens = [];
    for (const p of prompts)
      tokens.push((await post(`${server.url}/tokenize`, { content: p, add_special: true, parse_special: true })).json.tokens);
    const first = await complete(client, prompts[0], false);
    assertSame(first, alone[0], 'first request');
    const rest = await Promise.all(prompts.slice(1).map((p, i) => complete(client, p, i % 2 === 0)));
    rest.forEach((r, i) => {
      const t = tokens[i + 1];
      let common = 0;
      while (common < t.length && t[common] === tokens[0][common]) common++;
      assert.ok(common > 100, 'the prompts share a long prefix');
      assert.ok(r.usage.prompt_tokens_details.cached_tokens >= common,
        `request ${i + 1} reused the shared prefix (${r.usage.prompt_tokens_details.cached_tokens} of ${common})`);
      assertSame(r, alone[i + 1], `request ${i + 1}`);
    });
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test('a long prompt is prefilled in chunks while another stream keeps generating', async () => {
  const server = await startServer(['-m', fixture(MODELS[0]), '-c', '2048', '--parallel', '2', '-b', '16', '-t', '1'],
    { name: 'chunks' });
  const client = clientOf(server);
  try {
    // stream A: a long generation; the arrival time of each of its tokens is recorded
    const arrivals = [];
    const a = await client.completions.create({
      model: 'm', prompt: 'Once upon a time', max_tokens: 2000, temperature: 0, logit_bias: { 2: -100 }, logprobs: 0,
      stream: true,
    });
    const reading = (async () => {
      for await (const ch of a) {
        const lp = ch.choices.length ? ch.choices[0].logprobs : null;
        if (lp) for (let i = 0; i < lp.tokens.length; i++) arrivals.push(performance.now());
      }
    })();
    while (arrivals.length < 5) await new Promise((r) => setTimeout(r, 5));
    // request B: a long prompt, prefilled in steps of 16 tokens (15 beside A's one); a server that put it into one
    // step would give A only the tokens of the HTTP round trip (about 25 here, against 127 steps)
    const t0 = performance.now();
    const b = await client.completions.create({ model: 'm', prompt: story.repeat(35), max_tokens: 1, temperature: 0 });
    const t1 = performance.now();
    a.controller.abort();
    await reading.catch(() => {});
    const steps = Math.ceil(b.usage.prompt_tokens / 15);
    const during = arrivals.filter((t) => t >= t0 && t <= t1).length;
    assert.ok(b.usage.prompt_tokens > 1500, 'a long prompt');
    assert.ok(during >= steps / 2,
      `stream A got ${during} tokens while B's ${b.usage.prompt_tokens} prompt tokens were prefilled (${steps} steps)`);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

test('speculative decoding in the server (prompt lookup, a draft model) changes nothing in the replies', async () => {
  const model = MODELS[0];
  const alone = await references(model, PROMPTS);
  const sources = [['--spec', 'ngram', '--ngram-min', '1'], ['--draft-model', fixture(model)]];
  for (const source of sources) {
    const server = await startServer(['-m', fixture(model), '-c', '512', '--parallel', '2', '-t', '1', '--spec-fixed',
      '--draft-max', '6', ...source], { name: 'spec' });
    const client = clientOf(server);
    try {
      const m0 = await metrics(server.url);
      // without logprobs the slots speculate; with them they take a token per step: the same text both ways
      const plain = await Promise.all(PROMPTS.map(async (p, i) => {
        const req = { model: 'm', prompt: p, max_tokens: MAX_TOKENS, temperature: 0 };
        if (i % 2 === 0) return (await client.completions.create(req)).choices[0].text;
        let text = '';
        for await (const ch of await client.completions.create({ ...req, stream: true }))
          if (ch.choices.length) text += ch.choices[0].text;
        return text;
      }));
      plain.forEach((text, i) => assert.equal(text, alone[i].text, `${source[1]}: prompt ${i}`));
      assertSame(await complete(client, PROMPTS[3], false), alone[3], `${source[1]}: with logprobs`);
      const m1 = await metrics(server.url);
      const drafted = m1.tandem_spec_drafted_tokens_total - m0.tandem_spec_drafted_tokens_total;
      const accepted = m1.tandem_spec_accepted_tokens_total - m0.tandem_spec_accepted_tokens_total;
      assert.ok(drafted > 0 && accepted > 0, `${source[1]}: ${accepted} of ${drafted} drafted tokens accepted`);
    } finally {
      assert.equal(await server.stop(), 0);
    }
  }
});

test('experts apart with a hot-expert cache: the same replies, and /metrics counts the cache', async () => {
  const model = 'models/qwen2moe-tiny-q4_k_m.gguf';
  const prompts = PROMPTS.slice(0, 4);
  const alone = await references(model, prompts);
  const server = await startServer(['-m', fixture(model), '-c', '512', '--parallel', '4', '-t', '1',
    '--device', 'cpu,cpu', '-ot', 'blk=cpu1', '--experts-on', 'cpu0', '--expert-cache', '2'], { name: 'experts' });
  const client = clientOf(server);
  try {
    const m0 = await metrics(server.url);
    const together = await Promise.all(prompts.map((p, i) => complete(client, p, i % 2 === 1)));
    together.forEach((run, i) => assertSame(run, alone[i], `experts apart: prompt ${i}`));
    const m1 = await metrics(server.url);
    const pairs = m1.tandem_expert_cache_pairs_total - m0.tandem_expert_cache_pairs_total;
    const hits = m1.tandem_expert_cache_hits_total - m0.tandem_expert_cache_hits_total;
    assert.ok(pairs > 0 && hits > 0 && hits < pairs, `${hits} of ${pairs} pairs hit`);
    assert.ok(m1.tandem_expert_cache_swaps_total >= 0 && m1.tandem_expert_cache_bytes_moved_total >= 0);
  } finally {
    assert.equal(await server.stop(), 0);
  }
});
