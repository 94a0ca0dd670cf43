// AI call test page (CONTRACT §2): the documented call page's flow, plus status and transcript.
// Served by the server itself; `?server=http://host:3000` points it at another server.
'use strict';

const params = new URLSearchParams(location.search);
const SERVER = params.get('server') || (location.origin.startsWith('http') ? location.origin : 'http://localhost:3000');
// with AUTH_SECRET set on the server: `?token=<jwt>` (sent as a bearer token and Socket.IO auth)
const TOKEN = params.get('token');
const PEER_ID = 'caller-' + Math.random().toString(36).slice(2, 10);
const STATUS_TEXT = {
  INITIATING: '발신 중', RINGING: '연결 대기', CONNECTING: '연결 중',
  IN_PROGRESS: '통화 중', ENDED: '종료됨', FAILED: '실패',
};
const MEDIA_TEXT = {
  new: '준비', connecting: '연결 중', connected: '연결됨',
  disconnected: '끊김', failed: '실패', closed: '닫힘',
};

const $ = (id) => document.getElementById(id);
const startCallBtn = $('startCall');
const endCallBtn = $('endCall');

// what a test (or a curious developer in the console) can look at
const state = (window.aiCall = { pc: null, socket: null, call: null, events: [] });
let localStream = null;
let lastTranscript = null;

async function api(method, path, body) {
  const response = await fetch(SERVER + path, {
    method,
    headers: {
      ...(body ? { 'Content-Type': 'application/json' } : {}),
      ...(TOKEN ? { Authorization: 'Bearer ' + TOKEN } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await response.json();
  if (!json.success) throw new Error(json.error ? json.error.message : response.statusText);
  return json.data;
}

function showStatus(call) {
  state.call = call;
  $('callStatus').textContent = STATUS_TEXT[call.status] || call.status;
  $('callId').textContent = call.id;
}

function showError(message) {
  $('error').textContent = message || '';
}

function say(kind, text) {
  const line = document.createElement('p');
  line.className = kind;
  line.textContent = text;
  $('transcript').append(line);
  line.scrollIntoView({ block: 'end' });
}

async function refreshStatus() {
  if (!state.call) return;
  try {
    showStatus((await api('GET', `/api/v1/calls/${state.call.id}`)).call);
  } catch (err) {
    showError(err.message);
  }
}

startCallBtn.onclick = async () => {
  startCallBtn.disabled = true;
  showError('');
  $('transcript').replaceChildren();
  lastTranscript = null;
  try {
    await startCall();
    endCallBtn.disabled = false;
  } catch (err) {
    showError(err.message || String(err));
    await hangUp(false);
    startCallBtn.disabled = false;
  }
};

endCallBtn.onclick = async () => {
  endCallBtn.disabled = true;
  await hangUp(true);
  startCallBtn.disabled = false;
};

async function startCall() {
  // 1. WebRTC configuration, 2. place the call
  const rtcConfig = (await api('GET', '/api/v1/calls/config')).config;
  const call = (await api('POST', '/api/v1/calls', { callerNumber: $('callerNumber').value })).call;
  showStatus(call);
  const sessionId = call.sessionId;

  // 3. signaling
  const socket = (state.socket = io(SERVER + '/signaling', TOKEN ? { auth: { token: TOKEN } } : {}));
  socket.on('answer', async ({ answer }) => {
    await state.pc.setRemoteDescription(answer);
  });
  socket.on('ice-candidate', async ({ candidate }) => {
    await state.pc.addIceCandidate(candidate);
  });
  socket.on('ai-audio-response', (event) => {
    state.events.push(event);
    if (event.transcript && event.transcript !== lastTranscript) {
      lastTranscript = event.transcript;
      say('caller', event.transcript);
    }
    say('ai', event.text || '(음성 응답)');
  });
  // the caller spoke over the AI: the server has silenced its track; drop the little the
  // browser still holds (its jitter buffer) so the AI stops at once, and say so
  socket.on('ai-audio-interrupted', (event) => {
    state.events.push({ interrupted: true, ...event });
    const remote = $('remoteAudio');
    remote.muted = true;
    setTimeout(() => {
      remote.muted = false;
    }, 250);
    say('note', 'AI가 말을 멈췄습니다');
  });
  socket.on('error', ({ message }) => showError(message));
  socket.on('disconnect', () => say('note', '시그널링 연결이 끊어졌습니다'));

  // 4. microphone
  localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
  $('micState').textContent = '켜짐';

  // 5-8. the peer connection
  const pc = (state.pc = new RTCPeerConnection(rtcConfig));
  localStream.getTracks().forEach((track) => pc.addTrack(track, localStream));
  pc.ontrack = (event) => {
    $('remoteAudio').srcObject = event.streams[0] || new MediaStream([event.track]);
  };
  pc.onicecandidate = (event) => {
    // null = end of candidates, which the server accepts too
    socket.emit('ice-candidate', { sessionId, peerId: PEER_ID, candidate: event.candidate });
  };
  pc.onconnectionstatechange = () => {
    $('mediaState').textContent = MEDIA_TEXT[pc.connectionState] || pc.connectionState;
    if (pc.connectionState === 'connected') {
      say('note', '연결되었습니다. 잠시 후 AI 상담원이 인사합니다.');
      setTimeout(refreshStatus, 500);
    }
  };

  // 9. join, 10. offer
  socket.emit('join-session', { sessionId, peerId: PEER_ID, callId: call.id });
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  socket.emit('offer', { sessionId, peerId: PEER_ID, offer });

  // 13. connect (the status becomes IN_PROGRESS once media flows); the offer may already
  // have moved the call on, so a refusal here is not the end of the call
  try {
    showStatus((await api('POST', `/api/v1/calls/${call.id}/connect`)).call);
  } catch (err) {
    await refreshStatus();
  }
}

async function hangUp(endOnServer) {
  const call = state.call;
  if (endOnServer && call) {
    try {
      showStatus((await api('POST', `/api/v1/calls/${call.id}/end`)).call);
    } catch (err) {
      showError(err.message); // e.g. a call that never connected cannot be ENDED
      await refreshStatus();
    }
  }
  // closing our own connection fires no state change: the page says it itself
  if (state.pc) state.pc.close();
  if (state.pc || call) $('mediaState').textContent = MEDIA_TEXT.closed;
  $('remoteAudio').srcObject = null;
  if (localStream) localStream.getTracks().forEach((track) => track.stop());
  $('micState').textContent = '꺼짐';
  if (state.socket) {
    // our own hang-up: not the "connection lost" note meant for a dropped connection
    state.socket.off('disconnect');
    if (call) state.socket.emit('leave-session', { sessionId: call.sessionId, peerId: PEER_ID });
    state.socket.disconnect();
  }
  if (endOnServer && call) say('note', '통화를 종료했습니다');
  state.pc = null;
  state.socket = null;
  localStream = null;
}
