// test_tools.mjs: tool calls through the official OpenAI client, in the generic format every chat template gets
// (tools described in the system turn, calls as <tool_call> JSON, results as <tool_response> turns). With
// tool_choice "required" or a named function the reply is calls only, their arguments validate (Ajv) against the
// function's parameters; parallel_tool_calls false gives one call; streamed call deltas assemble to the whole
// reply's calls; a call, its result and the answer round-trip; bad tool fields are 400s naming the field. The model
// is the real stories260K, which has never seen a tool: every call is the grammar's doing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Ajv from 'ajv';
import { startServer, fixture, post } from './lib.mjs';

let server;
let client;

before(async () => {
  server = await startServer(['-m', fixture('real/stories260K.gguf'), '--chat-template', 'chatml', '-c', '2048',
    '--parallel', '2', '-t', '1'], { name: 'tools' });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 120000 });
});

after(async () => {
  assert.equal(await server.stop(), 0);
});

const weather = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string', maxLength: 20 }, unit: { enum: ['celsius', 'fahrenheit'] } },
      required: ['city', 'unit'],
      additionalProperties: false,
    },
  },
};
const toys = {
  type: 'function',
  function: {
    name: 'count_toys',
    parameters: { type: 'object', properties: { owner: { type: 'string', maxLength: 12 }, max: { type: 'integer', minimum: 0 } }, required: ['owner'] },
  },
};
const messages = [{ role: 'user', content: 'What is the weather like where Lily lives?' }];
const validators = Object.fromEntries([weather, toys].map((t) => [t.function.name, new Ajv({ strict: false }).compile(t.function.parameters)]));

function checkCalls(calls, names, what) {
  assert.ok(calls.length >= 1, `${what}: at least one call`);
  for (const c of calls) {
    assert.equal(c.type, 'function');
    assert.match(c.id, /^call_/);
    assert.ok(names.includes(c.function.name), `${what}: ${c.function.name}`);
    const args = JSON.parse(c.function.arguments);
    assert.ok(validators[c.function.name](args), `${what}: ${c.function.arguments} ${JSON.stringify(validators[c.function.name].errors)}`);
  }
}

test('tool_choice required: the reply is a call whose arguments validate', async () => {
  for (let seed = 1; seed <= 6; seed++) {
    const r = await client.chat.completions.create({ model: 'm', messages, tools: [weather, toys], tool_choice: 'required',
      parallel_tool_calls: false, seed, max_tokens: 400 });
    const m = r.choices[0].message;
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.equal(m.content, null);
    checkCalls(m.tool_calls, ['get_weather', 'count_toys'], `seed ${seed}`);
  }
});

test('a named function is the one called, once when parallel calls are off', async () => {
  for (const parallel of [true, false]) {
    const r = await client.chat.completions.create({
      model: 'm', messages, tools: [weather, toys], tool_choice: { type: 'function', function: { name: 'count_toys' } },
      parallel_tool_calls: parallel, seed: 3, max_tokens: 400,
    });
    const calls = r.choices[0].message.tool_calls;
    checkCalls(calls, ['count_toys'], 'named');
    assert.equal(calls.length, 1);
  }
  /* parallel calls: as many as the model writes, each complete one a valid call (the budget may cut the last) */
  const r = await client.chat.completions.create({ model: 'm', messages, tools: [weather, toys], tool_choice: 'required',
    seed: 5, max_tokens: 400 });
  checkCalls(r.choices[0].message.tool_calls, ['get_weather', 'count_toys'], 'parallel');
  assert.ok(['tool_calls', 'length'].includes(r.choices[0].finish_reason));
});

test('streamed call deltas assemble to the whole reply', async () => {
  const req = { model: 'm', messages, tools: [weather], tool_choice: 'required', parallel_tool_calls: false, seed: 11, max_tokens: 400 };
  const whole = await client.chat.completions.create(req);
  const calls = [];
  let finish = null;
  for await (const ch of await client.chat.completions.create({ ...req, stream: true })) {
    if (!ch.choices.length) continue;
    const d = ch.choices[0].delta;
    for (const tc of d.tool_calls ?? []) {
      calls[tc.index] ??= { id: '', type: 'function', function: { name: '', arguments: '' } };
      if (tc.id) calls[tc.index].id = tc.id;
      if (tc.function?.name) calls[tc.index].function.name += tc.function.name;
      if (tc.function?.arguments) calls[tc.index].function.arguments += tc.function.arguments;
    }
    if (ch.choices[0].finish_reason) finish = ch.choices[0].finish_reason;
  }
  assert.equal(finish, 'tool_calls');
  assert.deepEqual(calls.map((c) => [c.function.name, c.function.arguments]),
    whole.choices[0].message.tool_calls.map((c) => [c.function.name, c.function.arguments]));
});

test('a call, its result and the answer round-trip through the chat template', async () => {
  const first = await client.chat.completions.create({ model: 'm', messages, tools: [weather], tool_choice: 'required',
    parallel_tool_calls: false, seed: 2, max_tokens: 400 });
  const call = first.choices[0].message.tool_calls[0];
  const history = [...messages, { role: 'assistant', content: null, tool_calls: [call] },
    { role: 'tool', tool_call_id: call.id, content: '{"temperature": 21, "sky": "sunny"}' }];
  const answer = await client.chat.completions.create({ model: 'm', messages: history, tools: [weather], seed: 2, max_tokens: 30 });
  assert.equal(answer.choices[0].message.role, 'assistant');
  assert.ok(answer.usage.prompt_tokens > first.usage.prompt_tokens, 'the call and the result are in the prompt');
  const none = await client.chat.completions.create({ model: 'm', messages: history, tools: [weather], tool_choice: 'none', seed: 2, max_tokens: 30 });
  assert.ok(none.usage.prompt_tokens < answer.usage.prompt_tokens, 'tool_choice none leaves the tools out of the prompt');
  assert.equal(none.choices[0].message.tool_calls, undefined);
});

test('bad tool fields are 400s naming the field', async () => {
  const bad = [
    [{ tools: 'x' }, 'tools'], [{ tools: [{ type: 'retrieval' }] }, 'tools[0]'],
    [{ tools: [{ type: 'function', function: { name: 'a b' } }] }, 'tools[0]'],
    [{ tools: [weather, weather] }, 'tools[1]'],
    [{ tools: [weather], tool_choice: { type: 'function', function: { name: 'nope' } } }, 'tool_choice'],
    [{ tool_choice: 'required' }, 'tool_choice'], [{ tools: [weather], tool_choice: 'sometimes' }, 'tool_choice'],
    [{ tools: [weather], tool_choice: 'required', response_format: { type: 'json_object' } }, 'tool_choice'],
    [{ tools: [weather], parallel_tool_calls: 'yes' }, 'parallel_tool_calls'],
    [{ tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'string', pattern: 'x' } } }], tool_choice: 'required' }, 'tools'],
  ];
  for (const [body, param] of bad) {
    const r = await post(`${server.url}/v1/chat/completions`, { model: 'm', messages, ...body });
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.json.error.param, param, JSON.stringify(body));
  }
  const msgs = [[{ role: 'tool' }, 'messages[0].content'], [{ role: 'user', content: 'x', tool_calls: [] }, 'messages[0]'],
    [{ role: 'assistant', tool_calls: [{ type: 'function', function: { name: 'f' } }] }, 'messages[0].tool_calls']];
  for (const [m, param] of msgs) {
    const r = await post(`${server.url}/v1/chat/completions`, { model: 'm', messages: [m] });
    assert.equal(r.status, 400, JSON.stringify(m));
    assert.equal(r.json.error.param, param, JSON.stringify(m));
  }
});

for (const [template, single] of [['llama3', true], ['mistral-v3', false]]) {
  test(`${template} templates get their family's own format: calls validate, results round-trip`, async () => {
    const own = await startServer(['-m', fixture('real/stories260K.gguf'), '--chat-template', template, '-c', '2048',
      '--parallel', '1', '-t', '1'], { name: `tools-${template}` });
    try {
      const oc = new OpenAI({ baseURL: `${own.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 120000 });
      for (let seed = 1; seed <= 4; seed++) {
        const r = await oc.chat.completions.create({ model: 'm', messages, tools: [weather, toys], tool_choice: 'required',
          parallel_tool_calls: false, seed, max_tokens: 400 });
        assert.equal(r.choices[0].finish_reason, 'tool_calls');
        checkCalls(r.choices[0].message.tool_calls, ['get_weather', 'count_toys'], `${template} seed ${seed}`);
        assert.equal(r.choices[0].message.tool_calls.length, 1, 'one call');
      }
      if (!single) { /* parallel calls: a list of them, each valid, when the budget lets the list close */
        const r = await oc.chat.completions.create({ model: 'm', messages, tools: [weather, toys], tool_choice: 'required',
          seed: 9, max_tokens: 1500 });
        if (r.choices[0].finish_reason === 'tool_calls')
          checkCalls(r.choices[0].message.tool_calls, ['get_weather', 'count_toys'], `${template} parallel`);
        else assert.equal(r.choices[0].finish_reason, 'length');
      }
      const first = await oc.chat.completions.create({ model: 'm', messages, tools: [weather], tool_choice: 'required',
        parallel_tool_calls: false, seed: 2, max_tokens: 400 });
      const call = first.choices[0].message.tool_calls[0];
      const history = [{ role: 'system', content: 'You help with the weather.' }, ...messages,
        { role: 'assistant', content: null, tool_calls: [call] },
        { role: 'tool', tool_call_id: call.id, content: '{"temperature": 21}' }];
      const answer = await oc.chat.completions.create({ model: 'm', messages: history, tools: [weather], seed: 2, max_tokens: 20 });
      assert.ok(answer.usage.prompt_tokens > first.usage.prompt_tokens, 'the call and its result are in the prompt');
      const none = await oc.chat.completions.create({ model: 'm', messages: history, tools: [weather], tool_choice: 'none', seed: 2, max_tokens: 20 });
      assert.ok(none.usage.prompt_tokens < answer.usage.prompt_tokens, 'tool_choice none leaves the tools out');
    } finally {
      assert.equal(await own.stop(), 0);
    }
  });
}

// (what of a reply in progress may be streamed is checked in tests/tool_calls.c: here the stream's pieces depend on
// how fast the tiny model is against the HTTP thread)
test('with tool_choice auto a streamed reply without calls equals the whole reply', async () => {
  for (const seed of [1, 2, 3]) {
    const req = { model: 'm', messages, tools: [weather], seed, max_tokens: 40 };
    const whole = await client.chat.completions.create(req);
    let content = '';
    for await (const ch of await client.chat.completions.create({ ...req, stream: true }))
      if (ch.choices.length && ch.choices[0].delta.content) content += ch.choices[0].delta.content;
    assert.equal(content, whole.choices[0].message.content ?? '', `seed ${seed}`);
  }
});
