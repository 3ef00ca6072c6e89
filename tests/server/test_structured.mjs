// test_structured.mjs: structured output through the official OpenAI client. For each schema (nested objects, enums,
// arrays with bounds, optional fields, a recursive $ref, formats), seeded sampled replies all parse and validate
// against the schema with Ajv (a JSON Schema validator that is not tandem's); json_object replies parse as objects;
// streamed deltas concatenate to the reply a request with the same seed gets whole; with speculation on, replies
// are the same. The model is the real stories260K, which has never seen JSON: every reply is the grammar's doing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Ajv from 'ajv';
import { startServer, fixture } from './lib.mjs';

const RUNS = 8;
let server;
let client;

before(async () => {
  server = await startServer(['-m', fixture('real/stories260K.gguf'), '--chat-template', 'chatml', '-c', '1024',
    '--parallel', '4', '-t', '1'], { name: 'structured' });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 120000 });
});

after(async () => {
  assert.equal(await server.stop(), 0);
});

const name = { type: 'string', minLength: 1, maxLength: 16 };
const SCHEMAS = {
  person: {
    type: 'object',
    properties: {
      name,
      age: { type: 'integer', minimum: 0, maximum: 120 },
      mood: { enum: ['happy', 'sad', 'sleepy'] },
      friends: { type: 'array', items: name, minItems: 1, maxItems: 3 },
    },
    required: ['name', 'age', 'mood', 'friends'],
    additionalProperties: false,
  },
  optional: {
    type: 'object',
    properties: { title: name, pages: { type: 'integer', exclusiveMinimum: -5, maximum: 999 }, done: { type: 'boolean' }, note: { type: ['string', 'null'], maxLength: 12 } },
    required: ['title'],
    additionalProperties: false,
  },
  nested: {
    type: 'object',
    properties: {
      place: { type: 'object', properties: { city: name, when: { type: 'string', format: 'date' } }, required: ['city', 'when'], additionalProperties: false },
      things: { type: 'array', maxItems: 2, items: { anyOf: [{ type: 'number' }, { const: 'none' }] } },
    },
    required: ['place', 'things'],
    additionalProperties: false,
  },
  tree: {
    $defs: {
      node: {
        type: 'object',
        properties: { label: name, kids: { type: 'array', maxItems: 2, items: { $ref: '#/$defs/node' } } },
        required: ['label', 'kids'],
        additionalProperties: false,
      },
    },
    $ref: '#/$defs/node',
  },
};

const messages = [{ role: 'user', content: 'Tell me about Lily.' }];

function request(schemaName, seed) {
  return {
    model: 'm', messages, seed, temperature: 1, max_tokens: 1000,
    response_format: { type: 'json_schema', json_schema: { name: schemaName, schema: SCHEMAS[schemaName], strict: true } },
  };
}

for (const schemaName of Object.keys(SCHEMAS)) {
  test(`json_schema '${schemaName}': ${RUNS} sampled replies validate`, async () => {
    const validate = new Ajv({ strict: false }).compile(SCHEMAS[schemaName]);
    const replies = await Promise.all(Array.from({ length: RUNS }, (_, i) => client.chat.completions.create(request(schemaName, 100 + i))));
    for (const [i, r] of replies.entries()) {
      const text = r.choices[0].message.content;
      assert.equal(r.choices[0].finish_reason, 'stop', `run ${i} ended by itself: ${text}`);
      let value;
      assert.doesNotThrow(() => { value = JSON.parse(text); }, `run ${i} parses: ${text}`);
      assert.ok(validate(value), `run ${i} validates: ${text} ${JSON.stringify(validate.errors)}`);
    }
  });
}

test('json_object replies are JSON objects; streamed deltas make the whole reply', async () => {
  for (let seed = 1; seed <= 4; seed++) {
    const req = { model: 'm', messages, seed, temperature: 1, max_tokens: 1000, response_format: { type: 'json_object' } };
    const whole = await client.chat.completions.create(req);
    const text = whole.choices[0].message.content;
    if (whole.choices[0].finish_reason === 'stop') {
      const value = JSON.parse(text);
      assert.ok(value !== null && typeof value === 'object' && !Array.isArray(value), text);
    }
    let streamed = '';
    for await (const ch of await client.chat.completions.create({ ...req, stream: true }))
      if (ch.choices.length && ch.choices[0].delta.content) streamed += ch.choices[0].delta.content;
    assert.equal(streamed, text, `seed ${seed}: stream and whole agree`);
  }
});

test('speculative decoding leaves structured replies as they are', async () => {
  const spec = await startServer(['-m', fixture('real/stories260K.gguf'), '--chat-template', 'chatml', '-c', '1024',
    '--parallel', '2', '-t', '1', '--spec', 'ngram', '--ngram-min', '1', '--spec-fixed'], { name: 'structured-spec' });
  try {
    const specClient = new OpenAI({ baseURL: `${spec.url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 120000 });
    for (let seed = 1; seed <= 3; seed++) {
      const a = await client.chat.completions.create(request('person', seed));
      const b = await specClient.chat.completions.create(request('person', seed));
      assert.equal(b.choices[0].message.content, a.choices[0].message.content, `seed ${seed}`);
    }
  } finally {
    assert.equal(await spec.stop(), 0);
  }
});
