// lib.mjs: helpers of the server tests: start `tandem serve` on a free loopback port, raw HTTP over sockets,
// Prometheus metrics, and small JSON requests.
// The tests get the program and the fixture folder from the environment (TANDEM_BIN, TND_SHARED_DIR), which
// run.sh sets from its arguments.
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';

export const TANDEM = process.env.TANDEM_BIN;
export const SHARED = process.env.TND_SHARED_DIR;
if (!TANDEM || !SHARED) throw new Error('set TANDEM_BIN and TND_SHARED_DIR (tests/server/run.sh does)');

export function fixture(rel) {
  return path.join(SHARED, 'fixtures', rel);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Starts `tandem serve --port 0 ARGS` and waits for its "listening on" line. The server's log goes to stderr with
// a prefix. stop() sends SIGTERM and resolves to the exit code.
export async function startServer(args, { name = 'server', env = {} } = {}) {
  const proc = spawn(TANDEM, ['serve', '--port', '0', ...args], {
    stdio: ['ignore', 'inherit', 'pipe'],
    env: { ...process.env, ...env },
  });
  const log = [];
  let exitCode = null;
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve((exitCode = code ?? signal))));
  const port = await new Promise((resolve, reject) => {
    let pending = '';
    const timer = setTimeout(() => reject(new Error(`${name}: no "listening on" line within 60 s`)), 60000);
    proc.stderr.on('data', (chunk) => {
      pending += chunk.toString();
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        log.push(line);
        process.stderr.write(`[${name}] ${line}\n`);
        const m = /listening on http:\/\/[^ ]*:(\d+) /.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      }
    });
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${name}: exited with ${code} before listening`));
    });
  });
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    proc,
    log,
    alive: () => exitCode === null,
    async stop() {
      if (exitCode === null) proc.kill('SIGTERM');
      return await exited;
    },
  };
}

// Sends raw bytes (a string or several parts written with pauses) and collects what comes back until the server
// closes the connection or `timeoutMs` passes. Resolves to { data, closed, ms }.
export function rawRequest(port, parts, { timeoutMs = 10000, pauseMs = 0, closeAfterMs = null } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const sock = net.connect(port, '127.0.0.1');
    let data = '';
    let done = false;
    const finish = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ data, closed, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on('data', (d) => (data += d.toString('latin1')));
    sock.on('close', () => finish(true));
    sock.on('error', () => finish(true));
    sock.on('connect', async () => {
      for (const p of Array.isArray(parts) ? parts : [parts]) {
        if (done) return;
        sock.write(p);
        if (pauseMs) await sleep(pauseMs);
      }
      if (closeAfterMs !== null) setTimeout(() => finish(false), closeAfterMs);
    });
  });
}

// Status code and body of a raw HTTP/1.1 response.
export function parseResponse(data) {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(data);
  const sep = data.indexOf('\r\n\r\n');
  return {
    status: m ? Number(m[1]) : 0,
    head: sep >= 0 ? data.slice(0, sep) : data,
    body: sep >= 0 ? data.slice(sep + 4) : '',
  };
}

// fetch() with a JSON body (an object, or a string sent as is); resolves to { status, headers, json, text }.
export async function post(url, body, headers = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: res.status, headers: res.headers, json, text };
}

// The server's /metrics as { 'name' or 'name{labels}': number }.
export async function metrics(url, headers = {}) {
  const res = await fetch(`${url}/metrics`, { headers });
  const out = {};
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    out[line.slice(0, sp)] = Number(line.slice(sp + 1));
  }
  return out;
}

// Polls fn() until it returns true or `ms` pass; resolves to whether it did.
export async function eventually(fn, ms = 5000, stepMs = 50) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > end) return false;
    await sleep(stepMs);
  }
}

// Checks OpenAI's error shape: { error: { message, type, param, code } }.
export function isOpenAIError(json) {
  const e = json && json.error;
  return (
    !!e && typeof e.message === 'string' && e.message.length > 0 && typeof e.type === 'string' && 'param' in e &&
    'code' in e
  );
}
