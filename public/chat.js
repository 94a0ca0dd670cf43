// Chat page for the /chat Socket.IO namespace (contract §1). Plain script, no build step.
// Every piece of user or AI text goes into the page through textContent / text nodes only.
(() => {
  'use strict';

  const TYPING_IDLE_MS = 1500;
  const TYPING_SHOW_MAX_MS = 10000; // hide a peer's indicator if its "stopped" never arrives
  const USER_KEY = 'chat.userId';
  const SESSION_KEY = 'chat.sessionId';

  const $ = (id) => document.getElementById(id);
  const messagesEl = $('messages');
  const inputEl = $('message-input');
  const sendBtn = $('send-btn');
  const statusEl = $('status');
  const typingEl = $('typing');
  const errorEl = $('error');

  // crypto.randomUUID exists only in secure contexts; getRandomValues exists everywhere.
  function uuid4() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  let userId = localStorage.getItem(USER_KEY);
  if (!userId) {
    userId = uuid4();
    localStorage.setItem(USER_KEY, userId);
  }
  let sessionId = localStorage.getItem(SESSION_KEY); // null: the server creates a session
  // offline -> joining -> joined; 'left' after chat-left (sending rejoins the same session)
  let state = 'offline';
  let pendingText = null; // typed after the session was left; sent once we are back in
  let streamingBubble = null; // the assistant bubble that ai-message-chunk events grow
  let typingSent = false;
  let typingTimer = null;
  let peerTypingTimer = null;

  // --- rendering -----------------------------------------------------------------------

  function formatTime(value) {
    const d = new Date(value);
    return Number.isNaN(d.getTime())
      ? ''
      : d.toLocaleTimeString('ko-KR', { hour: 'numeric', minute: '2-digit' });
  }

  function makeBubble(sender, text, when) {
    const el = document.createElement('div');
    el.className = `msg ${sender}`;
    const body = document.createElement('div');
    body.className = 'body';
    body.textContent = text;
    el.append(body);
    const time = document.createElement('time');
    if (when !== undefined) {
      time.dateTime = new Date(when).toISOString();
      time.textContent = formatTime(when);
    }
    el.append(time);
    return el;
  }

  function appendBubble(el) {
    const atBottom =
      messagesEl.scrollHeight - messagesEl.scrollTop - messagesEl.clientHeight < 40;
    messagesEl.append(el);
    if (atBottom) messagesEl.scrollTop = messagesEl.scrollHeight;
    return el;
  }

  function scrollDown() {
    messagesEl.scrollTop = messagesEl.scrollHeight;
  }

  function addSystem(text) {
    appendBubble(makeBubble('system', text));
  }

  function showError(text) {
    errorEl.textContent = text;
    errorEl.hidden = !text;
  }

  function setStatus(state, text) {
    statusEl.dataset.state = state;
    statusEl.textContent = text;
  }

  function setState(value) {
    state = value;
    sendBtn.disabled = !(state === 'joined' || state === 'left');
  }

  function showPeerTyping(isTyping) {
    clearTimeout(peerTypingTimer);
    typingEl.hidden = !isTyping;
    if (isTyping) peerTypingTimer = setTimeout(() => (typingEl.hidden = true), TYPING_SHOW_MAX_MS);
  }

  // --- socket --------------------------------------------------------------------------

  // with AUTH_SECRET set on the server, open the page as `/?token=<jwt>`
  const token = new URLSearchParams(location.search).get('token');
  const socket = io('/chat', token ? { auth: { token } } : {});

  function rememberSession(id) {
    sessionId = id;
    if (id) localStorage.setItem(SESSION_KEY, id);
    else localStorage.removeItem(SESSION_KEY);
  }

  function join() {
    const payload = { userId, stream: true };
    if (sessionId) payload.sessionId = sessionId;
    const askedFor = sessionId;
    setState('joining');
    socket.emit('join-chat', payload, (reply) => {
      // A stored session we may not rejoin (e.g. another user's): start a fresh one instead.
      if (reply && reply.error && askedFor && askedFor === sessionId) {
        rememberSession(null);
        join();
      }
    });
  }

  socket.on('connect', () => {
    setStatus('connecting', '참가 중…');
    join();
  });

  socket.on('disconnect', (reason) => {
    setState('offline');
    setStatus('offline', '재연결 중…');
    showPeerTyping(false);
    // The client reconnects by itself except after a server-side disconnect.
    if (reason === 'io server disconnect') socket.connect();
  });

  socket.on('connect_error', (err) => {
    if (socket.active) {
      setStatus('offline', '재연결 중…');
    } else {
      setStatus('failed', '연결할 수 없습니다');
      showError(err && err.message ? err.message : '서버에 연결할 수 없습니다');
    }
  });

  socket.on('chat-joined', (data) => {
    rememberSession(data.sessionId);
    setState('joined');
    setStatus('online', '연결됨');
    showError('');
    if (pendingText !== null) {
      const text = pendingText;
      pendingText = null;
      socket.emit('send-message', { sessionId, message: text });
    }
  });

  socket.on('chat-history', (data) => {
    streamingBubble = null;
    const items = (data && Array.isArray(data.messages) ? data.messages : []).map((m) =>
      makeBubble(['user', 'assistant', 'system'].includes(m.sender) ? m.sender : 'system',
        m.content, m.createdAt));
    messagesEl.replaceChildren(...items);
    scrollDown();
  });

  socket.on('message-sent', (data) => {
    showPeerTyping(false);
    showError('');
    appendBubble(makeBubble('user', data.content, data.timestamp));
  });

  socket.on('ai-message-chunk', (data) => {
    if (!streamingBubble) {
      streamingBubble = appendBubble(makeBubble('assistant', '', data.timestamp));
      streamingBubble.classList.add('streaming');
    }
    const atBottom =
      messagesEl.scrollHeight - messagesEl.scrollTop - messagesEl.clientHeight < 40;
    streamingBubble.querySelector('.body').append(data.content); // a text node, not HTML
    if (atBottom) scrollDown();
  });

  socket.on('ai-message', (data) => {
    if (streamingBubble) {
      // The final event carries the whole reply: it replaces the streamed deltas.
      streamingBubble.querySelector('.body').textContent = data.content;
      streamingBubble.classList.remove('streaming');
      streamingBubble = null;
      scrollDown();
    } else {
      appendBubble(makeBubble('assistant', data.content, data.timestamp));
    }
  });

  socket.on('user-typing', (data) => showPeerTyping(Boolean(data && data.isTyping)));

  socket.on('chat-left', (data) => {
    if (!data || data.sessionId !== sessionId) return; // the session "새 대화" just left
    setState('left');
    setStatus('offline', '대화 종료됨');
    addSystem('대화가 종료되었습니다. 메시지를 보내면 이어서 대화합니다.');
  });

  socket.on('error', (data) => {
    showError((data && data.message) || '오류가 발생했습니다');
    if (streamingBubble) {
      streamingBubble.classList.remove('streaming');
      streamingBubble = null;
    }
  });

  // --- user input ----------------------------------------------------------------------

  function stopTyping() {
    clearTimeout(typingTimer);
    if (typingSent && state === 'joined') socket.emit('typing', { sessionId, isTyping: false });
    typingSent = false;
  }

  inputEl.addEventListener('input', () => {
    if (state !== 'joined') return;
    if (!inputEl.value) return stopTyping();
    if (!typingSent) {
      socket.emit('typing', { sessionId, isTyping: true });
      typingSent = true;
    }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
  });

  function send() {
    const text = inputEl.value.trim();
    if (!text) return;
    if (state === 'joined') {
      stopTyping();
      socket.emit('send-message', { sessionId, message: text });
    } else if (state === 'left') {
      pendingText = text; // rejoin the session first, then send (see chat-joined)
      join();
    } else {
      return; // still connecting: keep the text in the box
    }
    inputEl.value = '';
    inputEl.focus();
  }

  $('composer').addEventListener('submit', (event) => {
    event.preventDefault();
    send();
  });

  inputEl.addEventListener('keydown', (event) => {
    // isComposing: Enter that confirms a Korean IME syllable must not send the message.
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });

  $('new-chat').addEventListener('click', () => {
    const old = sessionId;
    stopTyping();
    rememberSession(null);
    pendingText = null;
    streamingBubble = null;
    messagesEl.replaceChildren();
    showPeerTyping(false);
    showError('');
    if (old && socket.connected) socket.emit('leave-chat', { sessionId: old });
    if (socket.connected) {
      setStatus('connecting', '참가 중…');
      join();
    } else {
      setState('offline'); // the connect handler joins a new session
    }
    inputEl.focus();
  });
})();
