// The admin console: live figures, the last hour as charts, sessions and calls, a
// conversation with its flags, export and erase. Every request goes to this server only.
"use strict";

const $ = (id) => document.getElementById(id);
// the words the offline counselor treats as a crisis (server/counseling/offline.py)
const CRISIS = /(죽고\s*싶|자살|극단적|사라지고\s*싶|살고\s*싶지\s*않|목숨|자해)/;
const PROTOCOLS = { "/chat": "채팅", "/signaling": "통화 신호", "/ws/chat": "에이전트",
                    "/v1/session/chat": "방", "/ws/session": "상담" };
const charts = {};
let selected = null; // { userId, sessionId }
let sessionCursor = null;
let callCursor = null;

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  if (response.status === 204) return null;
  const body = await response.json();
  if (!response.ok) {
    const message = body.message || (body.error && body.error.message) || response.statusText;
    throw new Error(`${response.status} ${message}`);
  }
  return body;
}

function say(text) { $("status").textContent = text; }
function when(iso) { return iso ? new Date(iso).toLocaleString("ko-KR") : "-"; }
function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }

function number(label, value) {
  const div = document.createElement("div");
  div.className = "number";
  const b = document.createElement("b");
  b.textContent = value;
  div.append(b, label);
  return div;
}

function renderNumbers(current) {
  const items = [];
  for (const [protocol, n] of Object.entries(current.connections || {})) {
    items.push(number(`연결: ${PROTOCOLS[protocol] || protocol}`, n));
  }
  items.push(number("진행 중인 통화", current.activeCalls));
  items.push(number("분당 응답", current.turnsPerMinute));
  items.push(number("분당 오류", current.errorsPerMinute));
  $("numbers").replaceChildren(...items);
}

function chart(id, series, data) {
  const width = Math.max(280, $(id).clientWidth || 320);
  if (!charts[id]) {
    charts[id] = new uPlot({ width, height: 160, series: [{}, ...series],
                             axes: [{}, { size: 50 }] }, data, $(id));
  } else {
    charts[id].setData(data);
  }
}

function renderCharts(points) {
  const t = points.map((p) => p.t);
  const col = (key) => points.map((p) => (p[key] === null ? null : p[key]));
  chart("chart-turns", [{ label: "응답/분", stroke: "#23395d" }, { label: "오류/분", stroke: "#b00020" }],
        [t, col("turnsPerMinute"), col("errorsPerMinute")]);
  chart("chart-latency", [{ label: "평균", stroke: "#2a7ab0" }, { label: "p95", stroke: "#e08a00" }],
        [t, col("turnMeanMs"), col("turnP95Ms")]);
  chart("chart-voice", [{ label: "p95", stroke: "#6a3d9a" }], [t, col("firstAudioP95Ms")]);
}

async function refreshMetrics() {
  try {
    const data = await api("/api/v1/admin/metrics");
    renderNumbers(data.current);
    renderCharts(data.points);
    $("metrics-error").hidden = true;
  } catch (error) {
    $("metrics-error").textContent = `지표를 불러오지 못했습니다: ${error.message}`;
    $("metrics-error").hidden = false;
  }
}

async function loadSessions(more = false) {
  const query = new URLSearchParams({ limit: "20" });
  const user = $("session-user").value.trim();
  if (user) query.set("userId", user);
  if ($("session-active").value) query.set("active", $("session-active").value);
  if (more && sessionCursor) query.set("before", sessionCursor);
  const data = await api(`/api/v1/chat/sessions?${query}`);
  const rows = data.sessions.map((s) => {
    const tr = document.createElement("tr");
    tr.dataset.sessionId = s.sessionId;
    tr.append(cell(s.sessionId.slice(0, 8)), cell(s.userId), cell(s.isActive ? "활성" : "종료"),
              cell(s.messageCount), cell(when(s.lastActivity)));
    tr.addEventListener("click", () => openSession(s.sessionId, s.userId));
    return tr;
  });
  if (more) $("sessions").append(...rows); else $("sessions").replaceChildren(...rows);
  sessionCursor = data.next;
  $("sessions-more").hidden = !data.next;
}

async function loadCalls(more = false) {
  const query = new URLSearchParams({ limit: "20" });
  if ($("call-status").value) query.set("status", $("call-status").value);
  if (more && callCursor) query.set("before", callCursor);
  const { data } = await api(`/api/v1/calls?${query}`);
  const rows = data.calls.map((c) => {
    const tr = document.createElement("tr");
    tr.append(cell(c.id.slice(0, 8)), cell(c.callerNumber), cell(c.status),
              cell(c.duration ?? "-"), cell(when(c.createdAt)));
    tr.addEventListener("click", () => openCall(c.id));
    return tr;
  });
  if (more) $("calls").append(...rows); else $("calls").replaceChildren(...rows);
  callCursor = data.next;
  $("calls-more").hidden = !data.next;
}

function renderMessages(messages) {
  $("messages").replaceChildren(...messages.map((m) => {
    const li = document.createElement("li");
    li.className = m.sender;
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = `${m.sender} · ${when(m.createdAt)}`;
    if (m.sender === "user" && CRISIS.test(m.content)) {
      const flag = document.createElement("span");
      flag.className = "flag";
      flag.textContent = "위기 표현";
      meta.append(flag);
    }
    const sentiment = m.metadata && m.metadata.sentiment;
    if (sentiment) {
      const badge = document.createElement("span");
      badge.className = "sentiment";
      badge.textContent = `감정: ${sentiment.sentiment ?? sentiment}`;
      meta.append(badge);
    }
    li.append(meta, document.createTextNode(m.content));
    return li;
  }));
}

async function openSession(sessionId, userId) {
  selected = { sessionId, userId };
  const data = await api(`/api/v1/chat/sessions/${encodeURIComponent(sessionId)}/messages?limit=200`);
  $("conversation-meta").textContent = `세션 ${sessionId} · 사용자 ${userId} · 메시지 ${data.messages.length}개`;
  renderMessages(data.messages);
  $("conversation").hidden = false;
  $("delete-session").hidden = false;
}

async function openCall(callId) {
  const { data } = await api(`/api/v1/calls/${encodeURIComponent(callId)}`);
  // the call's user is its session's: the caller's number without AUTH_SECRET
  selected = { sessionId: data.call.sessionId, userId: null, suggest: data.call.callerNumber };
  $("conversation-meta").textContent =
    `통화 ${callId} · ${data.call.callerNumber} · ${data.call.status}`;
  renderMessages(data.transcript);
  $("conversation").hidden = false;
  $("delete-session").hidden = false;
}

async function exportUser() {
  const user = selected && (selected.userId || prompt("내보낼 사용자 ID", selected.suggest));
  if (!user) return;
  const data = await api(`/api/v1/users/${encodeURIComponent(user)}/export`);
  const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `export-${user}.json`;
  link.click();
  say(`${user}: 내보냈습니다`);
}

async function eraseUser() {
  const user = selected && (selected.userId || prompt("삭제할 사용자 ID", selected.suggest));
  if (!user) return;
  if (!confirm(`사용자 ${user}의 모든 데이터를 삭제합니다. 되돌릴 수 없습니다. 계속할까요?`)) return;
  const { erased } = await api(`/api/v1/users/${encodeURIComponent(user)}`, { method: "DELETE" });
  const counts = Object.entries(erased).map(([k, v]) => `${k} ${v}`).join(", ");
  say(`${user}: 삭제했습니다 (${counts})`);
  $("conversation").hidden = true;
  await Promise.all([loadSessions(), loadCalls()]);
}

async function deleteSession() {
  if (!selected) return;
  if (!confirm(`세션 ${selected.sessionId}과 그 메시지를 삭제합니다. 계속할까요?`)) return;
  await api(`/api/v1/chat/sessions/${encodeURIComponent(selected.sessionId)}`, { method: "DELETE" });
  say(`세션 ${selected.sessionId}: 삭제했습니다`);
  $("conversation").hidden = true;
  await Promise.all([loadSessions(), loadCalls()]);
}

function guard(action) {
  return (event) => {
    if (event) event.preventDefault();
    action().catch((error) => say(`실패: ${error.message}`));
  };
}

$("session-search").addEventListener("submit", guard(() => loadSessions()));
$("call-search").addEventListener("submit", guard(() => loadCalls()));
$("sessions-more").addEventListener("click", guard(() => loadSessions(true)));
$("calls-more").addEventListener("click", guard(() => loadCalls(true)));
$("export-user").addEventListener("click", guard(exportUser));
$("erase-user").addEventListener("click", guard(eraseUser));
$("delete-session").addEventListener("click", guard(deleteSession));

guard(async () => {
  await Promise.all([refreshMetrics(), loadSessions(), loadCalls()]);
  say("준비되었습니다");
})();
setInterval(refreshMetrics, 15000);
