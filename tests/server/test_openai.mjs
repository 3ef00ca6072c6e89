// test_openai.mjs: `tandem serve` driven by the official OpenAI client: chat and text completions, streamed and
// whole, usage, stop strings, seeds, logprobs, logit bias, penalties, refusals and the API key.
// The model is the real stories260K (its vocabulary has no chat template, so the server runs with chatml).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServer, fixture, post, eventually, TANDEM } from './lib.mjs';

const KEY = 'test-key-7f3a9c';
let server;
let client;
const MODEL = 'stories';

before(async () => {
  server = await startServer(
    ['-m', fixture('real/stories260K.gguf'), '--chat-template', 'chatml', '-c', '512', '--parallel', '4', '-t', '1',
     '--alias', MODEL, '--api-key', KEY],
    { name: 'openai' });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0, timeout: 60000 });
});

after(async () => {
  assert.equal(await server.stop(), 0, 'the server exits cleanly on SIGTERM');
});

const auth = { authorization: `Bearer ${KEY}` };

// Token count of `text` as the server tokenizes a completion prompt.
async function countTokens(text) {
  const r = await post(`${server.url}/tokenize`, { content: text, add_special: true, parse_special: true }, auth);
  assert.equal(r.status, 200);
  return r.json.tokens.length;
}

const chatRequest = {
  model: MODEL,
  messages: [
    { role: 'system', content: 'You tell short stories.' },
    { role: 'user', content: 'Tell me about a cat named Tom.' },
  ],
  temperature: 0,
  max_tokens: 24,
};

async function collectChat(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

test('models list names the served model', async () => {
  const list = await client.models.list();
  const ids = [];
  for await (const m of list) ids.push(m.id);
  assert.deepEqual(ids, [MODEL]);
});

test('chat completion: message, finish reason and usage', async () => {
  const r = await client.chat.completions.create(chatRequest);
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.model, MODEL);
  assert.equal(r.choices.length, 1);
  const c = r.choices[0];
  assert.equal(c.message.role, 'assistant');
  assert.equal(typeof c.message.content, 'string');
  assert.ok(c.message.content.length > 0);
  assert.ok(['stop', 'length'].includes(c.finish_reason));
  if (c.finish_reason === 'length') assert.equal(r.usage.completion_tokens, 24);
  else assert.ok(r.usage.completion_tokens < 24);
  assert.ok(r.usage.prompt_tokens > 10);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

test('chat stream: role first, same text and usage as the whole response', async () => {
  const whole = await client.chat.completions.create(chatRequest);
  const chunks = await collectChat(
    await client.chat.completions.create({ ...chatRequest, stream: true, stream_options: { include_usage: true } }));
  assert.ok(chunks.length >= 3);
  assert.equal(chunks[0].object, 'chat.completion.chunk');
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const usageChunk = chunks[chunks.length - 1];
  assert.deepEqual(usageChunk.choices, []);
  const finishChunk = chunks[chunks.length - 2];
  assert.equal(finishChunk.choices[0].finish_reason, whole.choices[0].finish_reason);
  for (const ch of chunks.slice(0, -2)) {
    assert.equal(ch.choices[0].finish_reason, null);
    assert.equal(ch.usage, null);
    assert.equal(ch.id, chunks[0].id);
  }
  const text = chunks.map((ch) => ch.choices[0]?.delta?.content ?? '').join('');
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(usageChunk.usage.prompt_tokens, whole.usage.prompt_tokens);
  assert.equal(usageChunk.usage.completion_tokens, whole.usage.completion_tokens);
  assert.equal(usageChunk.usage.total_tokens, whole.usage.total_tokens);
});

test('chat stream without include_usage carries no usage', async () => {
  const chunks = await collectChat(await client.chat.completions.create({ ...chatRequest, stream: true }));
  for (const ch of chunks) assert.equal(ch.usage, undefined);
  assert.ok(chunks[chunks.length - 1].choices[0].finish_reason);
});

test('text completion: whole and streamed agree, prompt tokens counted', async () => {
  const prompt = 'Once upon a time, there was a little dog';
  const whole = await client.completions.create({ model: MODEL, prompt, max_tokens: 30, temperature: 0 });
  assert.equal(whole.object, 'text_completion');
  assert.equal(whole.choices[0].finish_reason, 'length');
  assert.equal(whole.usage.completion_tokens, 30);
  assert.equal(whole.usage.prompt_tokens, await countTokens(prompt));
  const stream = await client.completions.create({
    model: MODEL, prompt, max_tokens: 30, temperature: 0, stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let usage = null;
  let finish = null;
  for await (const ch of stream) {
    if (ch.usage) usage = ch.usage;
    if (ch.choices.length) {
      text += ch.choices[0].text;
      finish = ch.choices[0].finish_reason ?? finish;
    }
  }
  assert.equal(text, whole.choices[0].text);
  assert.equal(finish, 'length');
  assert.equal(usage.completion_tokens, 30);
  assert.equal(usage.prompt_tokens, whole.usage.prompt_tokens);
});

test('prompt as token ids gives the same completion as the text', async () => {
  const prompt = 'The sun was shining';
  const tok = await post(`${server.url}/tokenize`, { content: prompt, add_special: true, parse_special: true }, auth);
  const a = await client.completions.create({ model: MODEL, prompt, max_tokens: 16, temperature: 0 });
  const b = await client.completions.create({ model: MODEL, prompt: tok.json.tokens, max_tokens: 16, temperature: 0 });
  assert.equal(b.choices[0].text, a.choices[0].text);
  assert.equal(b.usage.prompt_tokens, tok.json.tokens.length);
});

test('max_completion_tokens limits the reply', async () => {
  const r = await client.chat.completions.create({ ...chatRequest, max_tokens: undefined, max_completion_tokens: 5 });
  assert.equal(r.usage.completion_tokens, 5);
  assert.equal(r.choices[0].finish_reason, 'length');
});

test('stop strings end the text before the first occurrence, streamed or not', async () => {
  const prompt = 'Once upon a time';
  const base = await client.completions.create({ model: MODEL, prompt, max_tokens: 60, temperature: 0 });
  const full = base.choices[0].text;
  // a stop string from the middle of the greedy text: a word that occurs after the first 10 characters
  const words = full.slice(10).split(' ').filter((w) => w.length >= 3);
  assert.ok(words.length > 0, `greedy text has words: ${JSON.stringify(full)}`);
  const stop = words[0];
  const expected = full.slice(0, full.indexOf(stop));
  const r = await client.completions.create({ model: MODEL, prompt, max_tokens: 60, temperature: 0, stop: [stop, 'zzzq'] });
  assert.equal(r.choices[0].text, expected);
  assert.equal(r.choices[0].finish_reason, 'stop');
  const stream = await client.completions.create({ model: MODEL, prompt, max_tokens: 60, temperature: 0, stop, stream: true });
  let text = '';
  let finish = null;
  for await (const ch of stream) {
    text += ch.choices[0].text;
    finish = ch.choices[0].finish_reason ?? finish;
  }
  assert.equal(text, expected);
  assert.equal(finish, 'stop');
});

test('seed makes sampling repeatable; other seeds differ', async () => {
  const req = { model: MODEL, prompt: 'Lily went to the park', max_tokens: 40, temperature: 1, top_p: 0.95 };
  const a = await client.completions.create({ ...req, seed: 1234 });
  const b = await client.completions.create({ ...req, seed: 1234 });
  assert.equal(a.choices[0].text, b.choices[0].text);
  const others = [];
  for (const seed of [1, 2, 3]) others.push((await client.completions.create({ ...req, seed })).choices[0].text);
  assert.ok(others.some((t) => t !== a.choices[0].text), 'different seeds give different samples');
});

test('logprobs: one entry per token, top alternatives sorted, greedy token first', async () => {
  const r = await client.chat.completions.create({ ...chatRequest, max_tokens: 12, logprobs: true, top_logprobs: 3 });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, r.usage.completion_tokens);
  assert.equal(content.map((e) => e.token).join(''), r.choices[0].message.content);
  for (const e of content) {
    assert.ok(e.logprob <= 0);
    assert.deepEqual(e.bytes, [...Buffer.from(e.token, 'utf8')]);
    assert.equal(e.top_logprobs.length, 3);
    assert.equal(e.top_logprobs[0].token, e.token, 'greedy picks the most likely token');
    assert.ok(Math.abs(e.top_logprobs[0].logprob - e.logprob) < 1e-6);
    for (let k = 1; k < 3; k++) assert.ok(e.top_logprobs[k].logprob <= e.top_logprobs[k - 1].logprob);
    const mass = e.top_logprobs.reduce((s, t) => s + Math.exp(t.logprob), 0);
    assert.ok(mass <= 1 + 1e-5);
  }
  const plain = await client.chat.completions.create({ ...chatRequest, max_tokens: 12 });
  assert.equal(plain.choices[0].logprobs, null);
});

test('completions logprobs use the legacy shape', async () => {
  const r = await client.completions.create({ model: MODEL, prompt: 'Tom had a', max_tokens: 6, temperature: 0, logprobs: 2 });
  const lp = r.choices[0].logprobs;
  assert.equal(lp.tokens.length, 6);
  assert.equal(lp.token_logprobs.length, 6);
  assert.equal(lp.top_logprobs.length, 6);
  assert.equal(lp.tokens.join(''), r.choices[0].text);
  let offset = 0;
  lp.tokens.forEach((t, i) => {
    assert.equal(lp.text_offset[i], offset);
    offset += Buffer.byteLength(t);
    assert.ok(Object.keys(lp.top_logprobs[i]).length <= 2);
  });
});

test('logit_bias bans a token; penalties change a repetitive text', async () => {
  const req = { model: MODEL, prompt: 'Once upon a time', max_tokens: 8, temperature: 0, logprobs: 1 };
  const base = await client.completions.create(req);
  const first = base.choices[0].logprobs.tokens[0];
  const ids = await post(`${server.url}/tokenize`, { content: first, parse_special: false }, auth);
  const firstId = ids.json.tokens.length === 1 ? ids.json.tokens[0] : null;
  if (firstId !== null) {
    const banned = await client.completions.create({ ...req, logit_bias: { [firstId]: -100 } });
    assert.notEqual(banned.choices[0].logprobs.tokens[0], first);
  }
  const long = { model: MODEL, prompt: 'Once upon a time', max_tokens: 80, temperature: 0 };
  const plain = await client.completions.create(long);
  const penalized = await client.completions.create({ ...long, frequency_penalty: 2, presence_penalty: 2 });
  assert.notEqual(penalized.choices[0].text, plain.choices[0].text);
});

test('refusals come as OpenAI errors the client understands', async () => {
  await assert.rejects(client.chat.completions.create({ ...chatRequest, n: 2 }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.equal(e.param, 'n');
    return true;
  });
  await assert.rejects(client.chat.completions.create({ ...chatRequest, temperature: 5 }), (e) => e.status === 400 &&
    e.param === 'temperature');
  await assert.rejects(client.chat.completions.create({ ...chatRequest, functions: [{ name: 'f' }] }),
    (e) => e.status === 400 && e.param === 'functions');
  await assert.rejects(client.chat.completions.create({ ...chatRequest, messages: [{ role: 'function', content: 'x' }] }),
    (e) => e.status === 400);
  const long = 'word '.repeat(700);
  await assert.rejects(client.completions.create({ model: MODEL, prompt: long, max_tokens: 4 }),
    (e) => e.status === 400 && e.code === 'context_length_exceeded');
});

test('API key: missing or wrong is 401, /health stays open', async () => {
  const wrong = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'nope', maxRetries: 0 });
  await assert.rejects(wrong.models.list(), (e) => e instanceof OpenAI.AuthenticationError);
  const almost = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY.slice(0, -1), maxRetries: 0 });
  await assert.rejects(almost.models.list(), (e) => e.status === 401);
  const longer = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY + 'x', maxRetries: 0 });
  await assert.rejects(longer.models.list(), (e) => e.status === 401);
  const none = await fetch(`${server.url}/v1/models`);
  assert.equal(none.status, 401);
  assert.equal(none.headers.get('www-authenticate'), 'Bearer');
  const metrics = await fetch(`${server.url}/metrics`);
  assert.equal(metrics.status, 401);
  const health = await fetch(`${server.url}/health`);
  assert.equal(health.status, 200);
  assert.deepEqual(await health.json(), { status: 'ok' });
});

test('tokenize and detokenize round-trip', async () => {
  const text = 'The little bird sang a happy song.';
  const t = await post(`${server.url}/tokenize`, { content: text, with_pieces: true }, auth);
  assert.equal(t.status, 200);
  assert.equal(t.json.tokens.map((p) => p.piece).join('').trim(), text);
  const d = await post(`${server.url}/detokenize`, { tokens: t.json.tokens.map((p) => p.id) }, auth);
  assert.equal(d.status, 200);
  assert.equal(d.json.content, text);
});

test('metrics report requests, tokens and KV blocks', async () => {
  const res = await fetch(`${server.url}/metrics`, { headers: auth });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/plain/);
  const text = await res.text();
  for (const name of ['tandem_requests_total{status="200"}', 'tandem_prompt_tokens_total', 'tandem_generated_tokens_total',
    'tandem_queue_depth', 'tandem_kv_blocks_used', 'tandem_kv_blocks_free', 'tandem_generation_tokens_per_second',
    'tandem_time_to_first_token_seconds_count'])
    assert.ok(text.includes(`\n${name} `) || text.startsWith(`${name} `), `metrics has ${name}`);
  assert.match(text, /\ntandem_requests_total\{status="400"\} [1-9]/);
  assert.match(text, /\ntandem_requests_total\{status="401"\} [1-9]/);
  assert.match(text, /\ntandem_generated_tokens_total [1-9]/);
});

test('the request log names each request once, without prompt text or the key', async () => {
  const marker = 'Zebra-7731 walked';
  const before = server.log.length;
  await client.completions.create({ model: MODEL, prompt: marker, max_tokens: 3 });
  await client.chat.completions.create({ ...chatRequest, messages: [{ role: 'user', content: marker }], max_tokens: 3 });
  assert.ok(await eventually(() => server.log.slice(before).filter((l) => / POST \/v1\//.test(l)).length === 2),
    'one line per request');
  const lines = server.log.slice(before).filter((l) => / POST \/v1\//.test(l));
  assert.match(lines[0], / POST \/v1\/completions 200 .*prompt \d+ \(cached \d+\) generated 3 /);
  for (const line of server.log) {
    assert.ok(!line.includes('Zebra'), `no prompt text in: ${line}`);
    assert.ok(!line.includes(KEY), `no key in: ${line}`);
  }
});

test('embeddings: unit vectors, one per input in order, base64 and float alike, equal to `tandem embed`', async () => {
  const texts = ['Lily went to the park.', 'Tom had a red ball.', 'Lily went to the park.'];
  const b64 = await client.embeddings.create({ model: MODEL, input: texts }); // the client asks for base64 and decodes
  const floats = await client.embeddings.create({ model: MODEL, input: texts, encoding_format: 'float' });
  assert.equal(b64.data.length, 3);
  assert.equal(b64.usage.prompt_tokens, b64.usage.total_tokens);
  assert.ok(b64.usage.prompt_tokens > 10);
  const dot = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0);
  for (let i = 0; i < 3; i++) {
    const v = b64.data[i].embedding;
    assert.equal(b64.data[i].index, i);
    assert.equal(v.length, 64);
    assert.ok(Math.abs(dot(v, v) - 1) < 1e-5, 'unit length');
    floats.data[i].embedding.forEach((x, j) => assert.ok(Math.abs(x - v[j]) < 1e-6, 'float and base64 agree'));
  }
  assert.deepEqual(b64.data[2].embedding, b64.data[0].embedding, 'the same text, the same vector');
  assert.ok(dot(b64.data[0].embedding, b64.data[1].embedding) < 0.999, 'different texts differ');
  const one = await client.embeddings.create({ model: MODEL, input: 'Tom had a red ball.', encoding_format: 'float' });
  one.data[0].embedding.forEach((x, j) => assert.ok(Math.abs(x - floats.data[1].embedding[j]) < 1e-6));
  // the command line computes the same vector
  const { execFileSync } = await import('node:child_process');
  const cli = JSON.parse(execFileSync(TANDEM, ['embed', '-m', fixture('real/stories260K.gguf'), '-p', texts[1]]).toString());
  cli.forEach((x, j) => assert.ok(Math.abs(x - one.data[0].embedding[j]) < 1e-6, 'tandem embed agrees'));
  for (const [body, param] of [[{ input: 'x', dimensions: 32 }, 'dimensions'], [{ input: [] }, 'input'], [{ input: 5 }, 'input'],
    [{ input: 'x', encoding_format: 'int8' }, 'encoding_format'], [{}, 'input'], [{ input: [[1, 99999]] }, 'input']]) {
    const r = await post(`${server.url}/v1/embeddings`, { model: MODEL, ...body }, auth);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.json.error.param, param);
  }
});
