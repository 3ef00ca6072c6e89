// test_hostile.mjs: malformed, mistyped, oversized, slow, partial and abandoned requests. Each gets the right 4xx
// with OpenAI's error shape, or a clean close; abandoned generations are cancelled and free their KV blocks; a full
// queue answers 429 with Retry-After; the time limit ends long generations; a failing device costs one request a
// 500 and nothing more; the server stays healthy throughout.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, fixture, post, rawRequest, parseResponse, metrics, eventually, isOpenAIError, sleep,
} from './lib.mjs';

const READ_TIMEOUT = 2;
let server;
let url;
let port;

before(async () => {
  server = await startServer(
    ['-m', fixture('real/stories260K.gguf'), '--chat-template', 'chatml', '-c', '4096', '--parallel', '2',
     '--max-queue', '1', '--read-timeout', String(READ_TIMEOUT), '--max-body', '65536', '-t', '1'],
    { name: 'hostile' });
  url = server.url;
  port = server.port;
});

after(async () => {
  const health = await fetch(`${url}/health`);
  assert.equal(health.status, 200, 'still healthy at the end');
  const ok = await post(`${url}/v1/completions`, { prompt: 'Once upon a time', max_tokens: 8, temperature: 0 });
  assert.equal(ok.status, 200, 'still generating at the end');
  assert.equal(await server.stop(), 0, 'the server exits cleanly on SIGTERM');
});

function assertError(r, status, param, what) {
  assert.equal(r.status, status, `${what}: status (${r.text})`);
  assert.ok(isOpenAIError(r.json), `${what}: OpenAI error shape (${r.text})`);
  if (param !== undefined) assert.equal(r.json.error.param, param, `${what}: param`);
}

// A long generation: stories260K does not end by itself when the end-of-sequence token is banned, and 4000 tokens
// take seconds.
const LONG = { prompt: 'Once upon a time', max_tokens: 4000, temperature: 1, seed: 7, logit_bias: { 2: -100 } };

// A complete POST request as raw text.
function httpRequest(path, body) {
  return `POST ${path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

test('malformed JSON is a 400', async () => {
  const bodies = ['{', '{"prompt": }', '[1, 2', 'nul', '{"prompt": "a"} trailing', '{"prompt": "\\u0000"}',
    '{"prompt": "a", "prompt": "b"}', '{"prompt": "\\ud800"}', '"text"', 'null', '[]', '', '{"prompt": "a",}'];
  for (const b of bodies) assertError(await post(`${url}/v1/completions`, b), 400, undefined, `body ${JSON.stringify(b)}`);
  // bytes that are not UTF-8 inside a JSON string
  const bytes = Buffer.concat([Buffer.from('{"prompt": "a'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
  const raw = await rawRequest(port, [
    `POST /v1/completions HTTP/1.1\r\nHost: test\r\nContent-Length: ${bytes.length}\r\nConnection: close\r\n\r\n`, bytes]);
  const res = parseResponse(raw.data);
  assert.equal(res.status, 400);
  assert.ok(isOpenAIError(JSON.parse(res.body)));
});

test('wrong types and out-of-range values are a 400 naming the field', async () => {
  const cases = [
    [{ prompt: 5 }, 'prompt'], [{ prompt: 'x', max_tokens: '5' }, 'max_tokens'], [{ prompt: 'x', max_tokens: 0 }, 'max_tokens'],
    [{ prompt: 'x', max_tokens: 2.5 }, 'max_tokens'], [{ prompt: 'x', temperature: 'hot' }, 'temperature'],
    [{ prompt: 'x', temperature: 2.5 }, 'temperature'], [{ prompt: 'x', top_p: 1.5 }, 'top_p'],
    [{ prompt: 'x', stream: 'yes' }, 'stream'], [{ prompt: 'x', stop: [1] }, 'stop'], [{ prompt: 'x', stop: '' }, 'stop'],
    [{ prompt: 'x', stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'], [{ prompt: 'x', logit_bias: { abc: 1 } }, 'logit_bias'],
    [{ prompt: 'x', logit_bias: { 5: 1000 } }, 'logit_bias'], [{ prompt: 'x', logit_bias: { 99999: 1 } }, 'logit_bias'],
    [{ prompt: 'x', logit_bias: [1] }, 'logit_bias'], [{ prompt: 'x', seed: 'a' }, 'seed'], [{ prompt: 'x', n: 3 }, 'n'],
    [{ prompt: 'x', stream_options: { include_usage: true } }, 'stream_options'],
    [{ prompt: 'x', stream: true, stream_options: { include_usage: 1 } }, 'stream_options.include_usage'],
    [{ prompt: [1, 'a'] }, 'prompt'], [{ prompt: [[1], [2]] }, 'prompt'], [{ prompt: [99999] }, 'prompt'], [{}, 'prompt'],
    [{ prompt: 'x', echo: true }, 'echo'], [{ prompt: 'x', logprobs: 50 }, 'logprobs'], [{ prompt: 'x', logprobs: true }, 'logprobs'],
    [{ prompt: 'x', presence_penalty: -3 }, 'presence_penalty'], [{ prompt: 'x', frequency_penalty: '1' }, 'frequency_penalty'],
    [{ prompt: 'x', model: 7 }, 'model'], [{ prompt: 'x', best_of: 2 }, 'best_of'],
  ];
  for (const [body, param] of cases)
    assertError(await post(`${url}/v1/completions`, body), 400, param, JSON.stringify(body));
  const user = { role: 'user', content: 'hi' };
  const chats = [
    [{ messages: 'hi' }, 'messages'], [{ messages: [] }, 'messages'], [{ messages: [{ role: 'robot', content: 'x' }] }, 'messages[0]'],
    [{ messages: [{ role: 'user' }] }, 'messages[0].content'], [{ messages: [{ role: 'user', content: 5 }] }, 'messages[0].content'],
    [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, 'messages[0].content'],
    [{ messages: [user, { role: 'user', content: 'x', tool_calls: [] }] }, 'messages[1]'], [{ messages: [7] }, 'messages[0]'],
    [{ messages: [user], top_logprobs: 2 }, 'top_logprobs'], [{ messages: [user], logprobs: 1 }, 'logprobs'],
    [{ messages: [user], response_format: 'json' }, 'response_format'], [{ max_tokens: 3 }, 'messages'],
    [{ messages: [user], response_format: { type: 'xml' } }, 'response_format.type'],
    [{ messages: [user], response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', pattern: 'a' } } } },
      'response_format.json_schema.schema'],
    [{ messages: [user], response_format: { type: 'json_schema' } }, 'response_format.json_schema'],
  ];
  for (const [body, param] of chats)
    assertError(await post(`${url}/v1/chat/completions`, body), 400, param, JSON.stringify(body));
  assertError(await post(`${url}/tokenize`, { content: 5 }), 400, 'content', 'tokenize');
  assertError(await post(`${url}/detokenize`, { tokens: [1, -2] }), 400, 'tokens', 'detokenize');
  assertError(await post(`${url}/detokenize`, { tokens: 'abc' }), 400, 'tokens', 'detokenize');
});

test('unknown and unsupported fields are refused', async () => {
  assertError(await post(`${url}/v1/completions`, { prompt: 'x', bogus: 1 }), 400, 'bogus', 'unknown field');
  assertError(await post(`${url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'x' }], best_of: 1 }), 400,
    'best_of', 'completions-only field in chat');
  assertError(await post(`${url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'x' }], audio: {} }), 400,
    'audio', 'unsupported feature');
  assertError(await post(`${url}/tokenize`, { content: 'x', extra: true }), 400, 'extra', 'tokenize field');
});

test('deep nesting is a 400', async () => {
  for (const depth of [40, 3000]) {
    const body = `{"prompt": "x", "user": ${'['.repeat(depth)}${']'.repeat(depth)}}`;
    assertError(await post(`${url}/v1/completions`, body), 400, undefined, `depth ${depth}`);
  }
});

test('unknown URLs are 404, wrong methods 405', async () => {
  const r = await fetch(`${url}/v1/nothing`);
  assert.equal(r.status, 404);
  assert.ok(isOpenAIError(await r.json()));
  const injected = await fetch(`${url}/x%0Aforged-log-line%0D`);
  assert.equal(injected.status, 404);
  assert.ok(server.log.every((l) => !l.startsWith('forged-log-line')), 'a decoded URL cannot forge log lines');
  const m = await fetch(`${url}/v1/completions`);
  assert.equal(m.status, 405);
  assert.equal(m.headers.get('allow'), 'POST');
  assert.ok(isOpenAIError(await m.json()));
});

test('oversized bodies get 413 or a closed connection', async () => {
  // declared too large: answered from the headers, the body is never read
  const head = `POST /v1/completions HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n`;
  const a = await rawRequest(port, head, { timeoutMs: 5000 });
  const ra = parseResponse(a.data);
  assert.equal(ra.status, 413);
  assert.ok(isOpenAIError(JSON.parse(ra.body.slice(0, ra.body.lastIndexOf('}') + 1))));
  // declared too large and sent anyway
  const b = await rawRequest(port, [head, 'x'.repeat(100000)], { timeoutMs: 5000 });
  assert.equal(parseResponse(b.data).status, 413);
  assert.ok(b.closed, 'connection closed after the 413');
  // chunked, no declared size: cut when it crosses the limit
  const chunk = 'x'.repeat(16384);
  const parts = [`POST /v1/completions HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n`];
  for (let i = 0; i < 8; i++) parts.push(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
  parts.push('0\r\n\r\n');
  const c = await rawRequest(port, parts, { timeoutMs: 5000 });
  assert.ok(c.closed, 'connection closed');
  assert.ok([0, 413].includes(parseResponse(c.data).status), `no answer but 413 (${c.data.slice(0, 40)})`);
  // huge headers
  const d = await rawRequest(port, `GET /health HTTP/1.1\r\nHost: test\r\nX-Big: ${'y'.repeat(100000)}\r\n\r\n`, { timeoutMs: 5000 });
  assert.ok(d.closed);
  assert.notEqual(parseResponse(d.data).status, 200);
});

test('slow and partial requests are closed after the read timeout', async () => {
  const limit = (READ_TIMEOUT + 5) * 1000; // generous for loaded machines: a client trickling slower than the
  // limit would otherwise hold its connection for 12 s or more
  // headers never finished
  const a = await rawRequest(port, 'POST /v1/completions HTTP/1.1\r\nHost: test\r\n', { timeoutMs: 15000 });
  assert.ok(a.closed && a.ms < limit, `unfinished headers closed after ${a.ms} ms`);
  // body shorter than declared
  const b = await rawRequest(port, httpRequest('/v1/completions', '{"prompt": "Once upon a time"}').slice(0, -10),
    { timeoutMs: 15000 });
  assert.ok(b.closed && b.ms < limit, `partial body closed after ${b.ms} ms`);
  // a body trickled byte by byte, slower than allowed in total though never silent for long
  const body = JSON.stringify({ prompt: 'Once upon a time', max_tokens: 2 });
  const req = httpRequest('/v1/completions', body);
  const split = req.indexOf('\r\n\r\n') + 4;
  const parts = [req.slice(0, split), ...req.slice(split).split('')];
  const c = await rawRequest(port, parts, { timeoutMs: 20000, pauseMs: 300 });
  assert.ok(c.closed && c.ms < limit + 1000, `trickled body closed after ${c.ms} ms`);
  assert.notEqual(parseResponse(c.data).status, 200);
  // a client that sends half a body and leaves
  await rawRequest(port, httpRequest('/v1/completions', body).slice(0, -5), { closeAfterMs: 100 });
  assert.equal((await fetch(`${url}/health`)).status, 200);
});

// The metrics once one more request than in m0 was cancelled and none is active (fails after 10 s).
async function oneMoreCancelled(m0) {
  let m1;
  assert.ok(await eventually(async () => {
    m1 = await metrics(url);
    return m1.tandem_requests_cancelled_total === m0.tandem_requests_cancelled_total + 1 && m1.tandem_active_requests === 0;
  }, 10000), 'cancelled');
  return m1;
}

test('a client leaving mid-stream cancels the generation and frees its KV blocks', async () => {
  const m0 = await metrics(url);
  const r = await rawRequest(port, httpRequest('/v1/completions', JSON.stringify({ ...LONG, stream: true })),
    { closeAfterMs: 300, timeoutMs: 20000 });
  assert.ok(!r.closed, 'the server kept streaming until the client left');
  assert.match(r.data, /^HTTP\/1\.1 200/);
  assert.ok((r.data.match(/\ndata: \{/g) || []).length >= 3, 'chunks arrived before leaving');
  const m1 = await oneMoreCancelled(m0);
  assert.ok(m1.tandem_kv_blocks_used <= m0.tandem_kv_blocks_used, 'its KV blocks were freed');
  assert.ok(m1.tandem_generated_tokens_total - m0.tandem_generated_tokens_total < 4000, 'generation stopped early');
});

test('a client leaving while a whole response is computed cancels it too', async () => {
  const m0 = await metrics(url);
  await rawRequest(port, httpRequest('/v1/completions', JSON.stringify(LONG)), { closeAfterMs: 300, timeoutMs: 20000 });
  const m1 = await oneMoreCancelled(m0);
  assert.ok(m1.tandem_kv_blocks_used <= m0.tandem_kv_blocks_used, 'its KV blocks were freed');
  const closed = (m) => m['tandem_requests_total{status="499"}'] ?? 0;
  assert.equal(closed(m1), closed(m0) + 1, 'counted as closed by the client (499)');
});

test('a full queue answers 429 with Retry-After', async () => {
  const m0 = await metrics(url);
  const streams = [];
  const open = (i) => streams.push(rawRequest(port, httpRequest('/v1/completions', JSON.stringify({ ...LONG, seed: i, stream: true })),
    { closeAfterMs: 1500, timeoutMs: 20000 })); /* well before 4000 tokens are done, even with fast kernels */
  open(1);
  open(2); // a burst that fits the free slots is not refused, although the queue holds only one
  assert.ok(await eventually(async () => (await metrics(url)).tandem_active_requests === 2, 10000), 'two slots busy');
  open(3);
  assert.ok(await eventually(async () => (await metrics(url)).tandem_queue_depth === 1, 10000), 'one request queued');
  const r = await post(`${url}/v1/completions`, { prompt: 'x', max_tokens: 2 });
  assertError(r, 429, undefined, 'queue full');
  assert.equal(r.headers.get('retry-after'), '1');
  await Promise.all(streams);
  assert.ok(await eventually(async () => {
    const m = await metrics(url);
    return m.tandem_active_requests === 0 && m.tandem_queue_depth === 0 &&
      m.tandem_requests_cancelled_total === m0.tandem_requests_cancelled_total + 3;
  }, 10000), 'all three cancelled when their clients left');
});

test('the per-request time limit ends a long generation', async () => {
  // 4000 tokens of this model now take about 1 s, so the request asks for 30000: several seconds in full
  const s = await startServer(['-m', fixture('real/stories260K.gguf'), '-c', '32768', '-t', '1', '--timeout', '1'],
    { name: 'timeout' });
  try {
    const t0 = Date.now();
    const r = await post(`${s.url}/v1/completions`, { ...LONG, max_tokens: 30000 });
    const ms = Date.now() - t0;
    assert.equal(r.status, 200);
    assert.equal(r.json.choices[0].finish_reason, 'length');
    assert.ok(r.json.usage.completion_tokens < 30000, `${r.json.usage.completion_tokens} tokens: not cut`);
    assert.ok(ms < 5000, `ended after ${ms} ms`);
  } finally {
    assert.equal(await s.stop(), 0);
  }
});

test('a device lost during a step (no other to go on with): that request gets a 503 in OpenAI shape, the next ones are served', async () => {
  // TANDEM_FAULT makes the 6th forward step of the engine's device fail as if the device was lost
  const s = await startServer(['-m', fixture('real/stories260K.gguf'), '-c', '512', '-t', '1'],
    { name: 'fault', env: { TANDEM_FAULT: 'step:6' } });
  try {
    const body = { prompt: 'Once upon a time', max_tokens: 12, temperature: 0 };
    const failed = await post(`${s.url}/v1/completions`, body);
    assertError(failed, 503, undefined, 'the request whose step failed');
    assert.match(failed.json.error.message, /fault injected/);
    const again = await post(`${s.url}/v1/completions`, body);
    assert.equal(again.status, 200, again.text);
    const reference = await post(`${url}/v1/completions`, body);
    assert.equal(again.json.choices[0].text, reference.json.choices[0].text, 'the same text as a server without faults');
    assert.equal((await fetch(`${s.url}/health`)).status, 200);
  } finally {
    assert.equal(await s.stop(), 0);
  }
});

test('requests keep working after all of the above', async () => {
  await sleep(100);
  const r = await post(`${url}/v1/completions`, { prompt: 'Tom and Sue', max_tokens: 16, temperature: 0, stream: false });
  assert.equal(r.status, 200);
  assert.equal(r.json.usage.completion_tokens, 16);
});
