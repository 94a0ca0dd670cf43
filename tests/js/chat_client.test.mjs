// The /chat namespace (contract §1) driven by the real npm socket.io-client v4, the library the
// existing browser clients use. Every test runs once over websocket and once over polling.
// Run by tests/test_js_client.py against the in-process server, or by hand:
//
//   cd tests/js && npm ci && CHAT_SERVER_URL=http://127.0.0.1:3000 npm test
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { io } from 'socket.io-client';

const SERVER_URL = (process.env.CHAT_SERVER_URL ?? 'http://127.0.0.1:3000').replace(/\/$/, '');
const AI_REPLY_MS = 10000;

const JOINED_TEXT = '채팅에 참가했습니다';
const GREETING = '안녕하세요! 복지 서비스 검색 AI입니다. 어떤 복지 서비스를 찾고 계신가요?';
const ELDERLY_QUESTION = '노인 복지 서비스 알려줘';
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;
const ISO_MS_Z = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

// --- helpers ---------------------------------------------------------------------------

// Every event a socket receives is recorded as it arrives, so events that come in one burst
// (chat-joined, chat-history and the greeting often share one polling response) are never
// missed between two awaits, and their order can be checked afterwards through `seq`.
const logs = new WeakMap();
let seq = 0;

function record(socket) {
  const log = { events: [], waiters: [] };
  logs.set(socket, log);
  socket.onAny((event, ...args) => {
    const rec = { event, data: args[0], seq: seq++, taken: false };
    log.events.push(rec);
    const waiter = log.waiters.find((w) => w.event === event);
    if (waiter) {
      log.waiters.splice(log.waiters.indexOf(waiter), 1);
      rec.taken = true;
      waiter.resolve(rec);
    }
  });
}

function received(socket, event) {
  return logs.get(socket).events.filter((rec) => rec.event === event);
}

function describeLog(socket) {
  const events = logs.get(socket).events;
  if (events.length === 0) return 'nothing';
  return events.map((rec) => `${rec.event} ${JSON.stringify(rec.data)}`).join('; ');
}

// The next not-yet-consumed `event` this socket received, as a record { event, data, seq }.
function nextEvent(socket, event, ms = 5000) {
  const log = logs.get(socket);
  const rec = log.events.find((r) => r.event === event && !r.taken);
  if (rec) {
    rec.taken = true;
    return Promise.resolve(rec);
  }
  return new Promise((resolve, reject) => {
    const waiter = {
      event,
      resolve: (r) => {
        clearTimeout(timer);
        resolve(r);
      },
    };
    const timer = setTimeout(() => {
      log.waiters.splice(log.waiters.indexOf(waiter), 1);
      reject(new Error(`timed out after ${ms} ms waiting for '${event}'; `
        + `received so far: ${describeLog(socket)}`));
    }, ms);
    log.waiters.push(waiter);
  });
}

// The payload of the next `event`; rejects after `ms` so a broken server fails fast.
async function once(socket, event, ms = 5000) {
  return (await nextEvent(socket, event, ms)).data;
}

async function connect(t, transports, ms = 5000) {
  const socket = io(`${SERVER_URL}/chat`, {
    transports,
    forceNew: true, // one engine connection per socket: two sockets are two browser tabs
    reconnection: false,
    timeout: ms,
  });
  record(socket);
  t.after(() => socket.close());
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no connection to ${SERVER_URL}/chat`)), ms);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once('connect_error', (err) => {
      clearTimeout(timer);
      reject(new Error(`connect_error to ${SERVER_URL}/chat: ${err.message}`));
    });
  });
  assert.equal(socket.io.engine.transport.name, transports[0]);
  return socket;
}

function newUserId() {
  return `js-test-${randomUUID()}`;
}

// Joins a new session and consumes chat-joined, chat-history and the greeting.
async function joinNew(socket, userId = newUserId(), extra = {}) {
  socket.emit('join-chat', { userId, ...extra });
  const joined = await once(socket, 'chat-joined');
  await once(socket, 'chat-history');
  await once(socket, 'ai-message');
  return joined.sessionId;
}

// Events of one connection are handled in order, so once this round trip is answered every
// event caused by the socket's earlier requests has been sent.
async function barrier(socket, sessionId) {
  const reply = await socket.timeout(5000).emitWithAck('get-history', { sessionId });
  assert.ok(Array.isArray(reply?.messages), `get-history ack: ${JSON.stringify(reply)}`);
  await sleep(100);
}

function assertTimestamp(value) {
  assert.ok(Number.isInteger(value), `timestamp must be integer ms, got ${JSON.stringify(value)}`);
  assert.ok(Math.abs(Date.now() - value) < 60_000, `timestamp ${value} is not "now" in ms`);
}

function assertNumberedList(text) {
  assert.match(text, /^1\. \S/m, `no line starting "1. " in:\n${text}`);
  assert.match(text, /^ {4}- 담당: \S/m, `no line starting "    - 담당: " in:\n${text}`);
}

async function expectError(socket, message) {
  const data = await once(socket, 'error');
  assert.deepEqual(data, { message });
}

// --- tests -----------------------------------------------------------------------------

for (const transports of [['websocket'], ['polling']]) {
  describe(`/chat over ${transports[0]}`, () => {
    test('join-chat without sessionId: chat-joined, empty history, the greeting', async (t) => {
      const socket = await connect(t, transports);
      const userId = newUserId();
      socket.emit('join-chat', { userId });

      const joined = await nextEvent(socket, 'chat-joined');
      assert.match(joined.data.sessionId, UUID_V4);
      assert.deepEqual(joined.data, {
        sessionId: joined.data.sessionId, userId, message: JOINED_TEXT,
      });

      const history = await nextEvent(socket, 'chat-history');
      assert.deepEqual(history.data, { messages: [] });

      const greeting = await nextEvent(socket, 'ai-message');
      assert.equal(greeting.data.content, GREETING);
      assertTimestamp(greeting.data.timestamp);
      // `id` is an addition (the history item id of the message, the cursor for resuming)
      assert.deepEqual(Object.keys(greeting.data).sort(), ['content', 'id', 'timestamp']);
      assert.match(greeting.data.id, /^[0-9a-f-]{36}$/);

      assert.ok(joined.seq < history.seq && history.seq < greeting.seq,
        `order: ${describeLog(socket)}`);
    });

    test('join-chat ack carries the same object as chat-joined', async (t) => {
      const socket = await connect(t, transports);
      const userId = newUserId();
      const ack = await socket.timeout(5000).emitWithAck('join-chat', { userId });
      const joined = await once(socket, 'chat-joined');
      assert.deepEqual(ack, joined);
      assert.equal(ack.userId, userId);
      assert.equal(ack.message, JOINED_TEXT);
    });

    test('send-message: message-sent before ai-message, a numbered welfare list', async (t) => {
      const socket = await connect(t, transports);
      const sessionId = await joinNew(socket);
      socket.emit('send-message', { sessionId, message: ELDERLY_QUESTION });

      const sent = await nextEvent(socket, 'message-sent');
      assert.equal(sent.data.content, ELDERLY_QUESTION);
      assertTimestamp(sent.data.timestamp);

      const reply = await nextEvent(socket, 'ai-message', AI_REPLY_MS);
      assert.ok(sent.seq < reply.seq, `order: ${describeLog(socket)}`);
      assertTimestamp(reply.data.timestamp);
      assertNumberedList(reply.data.content);

      // Streaming is opt-in: a client that did not ask for it never sees a chunk.
      assert.deepEqual(received(socket, 'ai-message-chunk'), []);
    });

    test('stream: true adds ai-message-chunk deltas that add up to the final ai-message',
      async (t) => {
        const socket = await connect(t, transports);
        const sessionId = await joinNew(socket, newUserId(), { stream: true });
        socket.emit('send-message', { sessionId, message: ELDERLY_QUESTION });

        const sent = await nextEvent(socket, 'message-sent');
        const reply = await nextEvent(socket, 'ai-message', AI_REPLY_MS);
        const chunks = received(socket, 'ai-message-chunk');
        assert.ok(chunks.length > 0, `no ai-message-chunk: ${describeLog(socket)}`);
        for (const chunk of chunks) {
          assert.ok(sent.seq < chunk.seq && chunk.seq < reply.seq, `order: ${describeLog(socket)}`);
          assert.equal(typeof chunk.data.content, 'string');
          assertTimestamp(chunk.data.timestamp);
        }
        assert.equal(chunks.map((c) => c.data.content).join(''), reply.data.content);
        assertNumberedList(reply.data.content);
      });

    test('get-history: stored messages, oldest first, ISO createdAt; limit keeps the latest',
      async (t) => {
        const socket = await connect(t, transports);
        const sessionId = await joinNew(socket);
        socket.emit('send-message', { sessionId, message: ELDERLY_QUESTION });
        await once(socket, 'message-sent');
        const reply = await once(socket, 'ai-message', AI_REPLY_MS);

        socket.emit('get-history', { sessionId });
        const { messages } = await once(socket, 'chat-history');
        assert.deepEqual(
          messages.map((m) => [m.sender, m.content]),
          [['assistant', GREETING], ['user', ELDERLY_QUESTION], ['assistant', reply.content]],
        );
        for (const m of messages) {
          assert.deepEqual(Object.keys(m).sort(), ['content', 'createdAt', 'id', 'sender']);
          assert.equal(typeof m.id, 'string');
          assert.ok(m.id.length > 0);
          assert.match(m.createdAt, ISO_MS_Z);
        }
        const times = messages.map((m) => Date.parse(m.createdAt));
        assert.deepEqual(times, [...times].sort((a, b) => a - b), 'oldest first');
        assert.equal(new Set(messages.map((m) => m.id)).size, messages.length);

        const limited = await socket.timeout(5000).emitWithAck(
          'get-history', { sessionId, limit: 2 });
        assert.deepEqual(limited.messages, messages.slice(1));
      });

    test('rejoin from a second socket: history replayed, no second greeting', async (t) => {
      const first = await connect(t, transports);
      const userId = newUserId();
      const sessionId = await joinNew(first, userId);
      first.emit('send-message', { sessionId, message: ELDERLY_QUESTION });
      await once(first, 'message-sent');
      await once(first, 'ai-message', AI_REPLY_MS);
      first.close();

      const second = await connect(t, transports);
      second.emit('join-chat', { userId, sessionId });
      const joined = await nextEvent(second, 'chat-joined');
      assert.deepEqual(joined.data, { sessionId, userId, message: JOINED_TEXT });
      const history = await nextEvent(second, 'chat-history');
      assert.ok(joined.seq < history.seq);
      assert.deepEqual(
        history.data.messages.map((m) => m.sender), ['assistant', 'user', 'assistant']);
      assert.equal(history.data.messages[0].content, GREETING);
      assert.equal(history.data.messages[1].content, ELDERLY_QUESTION);

      await barrier(second, sessionId);
      assert.deepEqual(received(second, 'ai-message'), [], 'a rejoin must not greet again');
    });

    test('typing reaches the other socket of the session, never the sender', async (t) => {
      const a = await connect(t, transports);
      const b = await connect(t, transports);
      const userId = newUserId();
      const sessionId = await joinNew(a, userId);
      b.emit('join-chat', { userId, sessionId });
      await once(b, 'chat-history');

      a.emit('typing', { sessionId, isTyping: true });
      assert.deepEqual(await once(b, 'user-typing'), { isTyping: true });
      a.emit('typing', { sessionId, isTyping: false });
      assert.deepEqual(await once(b, 'user-typing'), { isTyping: false });

      await barrier(a, sessionId);
      assert.deepEqual(received(a, 'user-typing'), [], 'the sender got its own typing');
    });

    test('message-sent and ai-message reach every socket of the session', async (t) => {
      const a = await connect(t, transports);
      const b = await connect(t, transports);
      const userId = newUserId();
      const sessionId = await joinNew(a, userId);
      b.emit('join-chat', { userId, sessionId });
      await once(b, 'chat-history');

      a.emit('send-message', { sessionId, message: ELDERLY_QUESTION });
      const reply = await once(a, 'ai-message', AI_REPLY_MS);
      assert.equal((await once(b, 'message-sent')).content, ELDERLY_QUESTION);
      assert.deepEqual(await once(b, 'ai-message', AI_REPLY_MS), reply);
    });

    test('leave-chat answers chat-left; the socket may no longer send there', async (t) => {
      const socket = await connect(t, transports);
      const sessionId = await joinNew(socket);
      socket.emit('leave-chat', { sessionId });
      assert.deepEqual(await once(socket, 'chat-left'), { sessionId });

      socket.emit('send-message', { sessionId, message: ELDERLY_QUESTION });
      await expectError(socket, '세션을 찾을 수 없습니다');
    });

    test('errors are error events, and the connection keeps serving', async (t) => {
      const socket = await connect(t, transports);

      socket.emit('send-message', { sessionId: randomUUID(), message: ELDERLY_QUESTION });
      await expectError(socket, '세션을 찾을 수 없습니다');

      socket.emit('join-chat', { userId: 42 });
      await expectError(socket, '잘못된 요청입니다: userId');

      const ack = await socket.timeout(5000).emitWithAck('join-chat', { userId: 42 });
      assert.deepEqual(ack, { error: { message: '잘못된 요청입니다: userId' } });
      await expectError(socket, '잘못된 요청입니다: userId');

      socket.emit('typing', null);
      const bad = await once(socket, 'error');
      assert.match(bad.message, /^잘못된 요청입니다/);

      // A session this socket never joined is refused even though it exists.
      const other = await connect(t, transports);
      const othersSession = await joinNew(other);
      socket.emit('send-message', { sessionId: othersSession, message: ELDERLY_QUESTION });
      await expectError(socket, '세션을 찾을 수 없습니다');

      const sessionId = await joinNew(socket);
      socket.emit('send-message', { sessionId, message: '' });
      await expectError(socket, '메시지가 비어 있습니다');
      socket.emit('send-message', { sessionId, message: '가'.repeat(2001) });
      await expectError(socket, '메시지가 너무 깁니다 (최대 2000자)');

      assert.deepEqual(received(socket, 'message-sent'), [], 'a refused message was echoed');

      socket.emit('send-message', { sessionId, message: ELDERLY_QUESTION });
      assert.equal((await once(socket, 'message-sent')).content, ELDERLY_QUESTION);
      assertNumberedList((await once(socket, 'ai-message', AI_REPLY_MS)).content);
      assert.equal(received(socket, 'error').length, 7);
    });
  });
}
