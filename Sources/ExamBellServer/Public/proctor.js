import { connectSocket, sessionToken, fetchJSON, openSession, formatTime } from "/static/socket.js";

const token = sessionToken();
const connection = document.getElementById("connection");
let session = null;

function showEnd(endDatetime) {
  const banner = document.getElementById("end-banner");
  banner.textContent = `시험이 종료되었습니다. (${formatTime(endDatetime)})`;
  banner.hidden = false;
  document.body.dataset.ended = "true";
}

async function refreshRoster() {
  try {
    const roster = await fetchJSON(`/api/exams/${encodeURIComponent(session.examId)}/roster`, token);
    const rows = roster.candidates.map((c) => {
      const tr = document.createElement("tr");
      tr.dataset.candidate = c.candidateId;
      for (const text of [c.candidateId, c.name, c.status, c.connected ? "연결" : "끊김",
                          c.acknowledged ? "확인" : (roster.status === "completed" ? "미확인" : "-"),
                          formatTime(c.lastActiveTime)]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    });
    document.getElementById("roster").replaceChildren(...rows);
    const connected = roster.candidates.filter((c) => c.connected).length;
    const acknowledged = roster.candidates.filter((c) => c.acknowledged).length;
    document.getElementById("counts").textContent =
      `· ${roster.candidates.length}명 · 연결 ${connected} · 종료 확인 ${acknowledged}`;
    if (roster.status === "completed") showEnd(roster.endDatetime);
  } catch (error) {
    document.getElementById("error").textContent = error.message;
  }
}

async function main() {
  session = await openSession(token, { titleSuffix: " – 감독" });
  if (!session) return;
  if (session.status === "completed") showEnd(session.endDatetime);
  connectSocket({
    socketUrl: session.socketUrl,
    token,
    onState: (state) => {
      connection.className = `pill ${state === "open" ? "on" : "off"}`;
      connection.textContent = state === "open" ? "연결됨" : "재연결 중…";
    },
    onMessage: (message) => {
      if (message.type === "exam_end" && message.examId === session.examId) {
        showEnd(message.timestamp);
        refreshRoster();
      }
    },
  });
  refreshRoster();
  setInterval(refreshRoster, 2000);
}

main();
