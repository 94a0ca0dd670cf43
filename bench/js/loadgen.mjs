// One load-generator process of `make bench` (driven by bench/chat.py).
//
//   node loadgen.mjs '{"url": "http://127.0.0.1:3000", "clients": 200, "turns": 10, ...}'
//
// Each client is a real socket.io-client v4 socket over websocket on `/chat`. Phase 1: every
// client connects and joins its own new session (`join-chat` -> `chat-joined`, then waits
// for the greeting `ai-message`); this process then prints {"event": "ready"} and waits for
// a `go` line on stdin (the orchestrator measures the server's memory in between, and starts
// every process's turns at once). Phase 2: each client sends `turns` messages one after the
// other, each one timed from `send-message` to the `ai-message` that answers it. With
// turns = 0 the clients stay connected and idle until `go`. Then every socket is closed and
// one {"event": "result"} line is printed. Everything is bounded: a step that takes longer
// than `stepTimeoutMs` counts as an error, and the whole run ends by `deadlineMs`.
import { createInterface } from 'node:readline';
import { io } from 'socket.io-client';

const cfg = {
  url: 'http://127.0.0.1:3000',
  namespace: '/chat',
  clients: 10,
  turns: 2,
  userPrefix: 'bench',
  maxConnecting: 256, // handshakes in flight at once (the server's accept backlog is finite)
  stepTimeoutMs: 60000,
  deadlineMs: 600000,
  ...JSON.parse(process.argv[2] || '{}'),
};

const errors = [];
const joinMs = [];
const turnMs = [];
const byTurn = []; // latencies of each client's first turn, second turn, ... (diagnostics)
const sockets = [];
let turnStart = 0;
let turnEnd = 0;

function fail(where, detail) {
  errors.push(`${where}: ${String(detail).slice(0, 200)}`);
}

// Resolves with the next `event` on `socket`, or rejects on an `error` event, a disconnect
// or the step timeout.
function next(socket, event) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(reject, new Error(`timeout waiting for ${event}`)), cfg.stepTimeoutMs);
    const onEvent = (data) => done(resolve, data);
    const onError = (data) => done(reject, new Error(`error event: ${JSON.stringify(data)}`));
    const onGone = (reason) => done(reject, new Error(`disconnected: ${reason}`));
    function done(settle, value) {
      clearTimeout(timer);
      socket.off(event, onEvent);
      socket.off('error', onError);
      socket.off('disconnect', onGone);
      socket.off('connect_error', onGone);
      settle(value);
    }
    socket.once(event, onEvent);
    socket.once('error', onError);
    socket.once('disconnect', onGone);
    socket.once('connect_error', onGone);
  });
}

async function join(index) {
  const started = performance.now();
  const socket = io(cfg.url + cfg.namespace, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    timeout: cfg.stepTimeoutMs,
  });
  sockets.push(socket);
  await next(socket, 'connect');
  if (cfg.turns === 0) {
    joinMs.push(performance.now() - started);
    return { socket, sessionId: null };
  }
  // both listeners before the emit: the three replies may arrive in one read
  const joined = next(socket, 'chat-joined').then((data) => {
    joinMs.push(performance.now() - started);
    return data;
  });
  const greeting = next(socket, 'ai-message');
  socket.emit('join-chat', { userId: `${cfg.userPrefix}-${index}` });
  const [{ sessionId }] = await Promise.all([joined, greeting]);
  return { socket, sessionId };
}

async function talk({ socket, sessionId }, index) {
  for (let turn = 0; turn < cfg.turns; turn++) {
    const reply = next(socket, 'ai-message');
    const sent = performance.now();
    socket.emit('send-message', { sessionId, message: `노인 복지 서비스 알려줘 (${index}/${turn})` });
    await reply;
    turnMs.push(performance.now() - sent);
    (byTurn[turn] ??= []).push(performance.now() - sent);
  }
}

// Runs `work(i)` for i in [0, n) with at most `limit` running at once; failures are counted.
async function pool(n, limit, work) {
  const results = new Array(n).fill(null);
  let cursor = 0;
  async function lane() {
    while (cursor < n) {
      const i = cursor++;
      try {
        results[i] = await work(i);
      } catch (err) {
        fail(`client ${i}`, err.message);
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, n) }, lane));
  return results;
}

function waitForGo() {
  return new Promise((resolve) => {
    const lines = createInterface({ input: process.stdin });
    lines.on('line', (line) => {
      if (line.trim() === 'go') {
        lines.close();
        resolve();
      }
    });
    lines.on('close', resolve); // the orchestrator is gone: finish rather than hang
  });
}

function print(obj, then) {
  process.stdout.write(JSON.stringify(obj) + '\n', then);
}

const tenth = (ms) => Math.round(ms * 10) / 10;

const deadline = setTimeout(() => {
  fail('deadline', `run exceeded ${cfg.deadlineMs} ms`);
  finish();
}, cfg.deadlineMs);

let finished = false;
function finish() {
  if (finished) return;
  finished = true;
  clearTimeout(deadline);
  for (const s of sockets) s.disconnect();
  const result = {
    event: 'result',
    joinMs: joinMs.map(tenth),
    turnMs: turnMs.map(tenth),
    turnStart,
    turnEnd,
    byTurn: byTurn.map((ms) => {
      const sorted = ms.sort((a, b) => a - b);
      return [tenth(sorted[Math.floor(sorted.length / 2)]), tenth(sorted[Math.ceil(sorted.length * 0.99) - 1])];
    }),
    errors: errors.length,
    errorSamples: errors.slice(0, 5),
  };
  // exit once the line is written (a pipe write may complete later); sockets close on exit
  print(result, () => process.exit(0));
}

const limit = cfg.turns === 0 ? cfg.maxConnecting : cfg.clients;
const joined = await pool(cfg.clients, limit, join);
print({ event: 'ready', joined: joinMs.length, errors: errors.length });
await waitForGo();
if (cfg.turns > 0) {
  turnStart = Date.now();
  await Promise.all(joined.map((client, i) => (client ? talk(client, i).catch((err) => fail(`client ${i}`, err.message)) : null)));
  turnEnd = Date.now();
}
finish();
