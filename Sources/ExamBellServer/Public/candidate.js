import { connectSocket, sessionToken, openSession, formatTime } from "/static/socket.js";

const token = sessionToken();
const form = document.getElementById("answers");
const connection = document.getElementById("connection");
const ITEMS = 5;
let session = null;
let ended = false;

function buildAnswerSheet(examId) {
  const saved = JSON.parse(localStorage.getItem(`exambell:${examId}:answers`) || "{}");
  for (let i = 1; i <= ITEMS; i++) {
    const item = document.createElement("fieldset");
    item.className = "item";
    item.innerHTML = `<legend>${i}번</legend>`;
    for (let choice = 1; choice <= 4; choice++) {
      const label = document.createElement("label");
      const input = document.createElement("input");
      input.type = "radio"; input.name = `q${i}`; input.value = String(choice);
      input.checked = saved[`q${i}`] === String(choice);
      label.append(input, ` ${choice}`);
      item.append(label);
    }
    form.append(item);
  }
  const short = document.createElement("div");
  short.className = "item";
  short.innerHTML = `<label for="q6">${ITEMS + 1}번 (단답형)</label><br>`;
  const text = document.createElement("input");
  text.id = "q6"; text.name = "q6"; text.value = saved.q6 || "";
  short.append(text);
  form.append(short);
  form.addEventListener("input", () => {
    const answers = Object.fromEntries(new FormData(form).entries());
    localStorage.setItem(`exambell:${examId}:answers`, JSON.stringify(answers));
  });
}

function lock(endDatetime) {
  if (ended) return;
  ended = true;
  for (const control of form.querySelectorAll("input, textarea, select, button")) control.disabled = true;
  document.getElementById("end-time").textContent = endDatetime ? `종료 시각: ${formatTime(endDatetime)}` : "";
  document.getElementById("end-notice").hidden = false;
  document.body.dataset.ended = "true";
}

function showConnection(state) {
  connection.className = `pill ${state === "open" ? "on" : "off"}`;
  connection.textContent = state === "open" ? "연결됨" : state === "connecting" ? "연결 중…" : "연결 끊김 – 재연결 중";
  connection.dataset.state = state;
}

async function main() {
  session = await openSession(token);
  if (!session) return;
  buildAnswerSheet(session.examId);
  if (session.status === "completed") lock(session.endDatetime);
  const socket = connectSocket({
    socketUrl: session.socketUrl,
    token,
    onState: showConnection,
    onMessage: (message) => {
      if (message.type === "exam_end" && message.examId === session.examId) {
        lock(message.timestamp);
        socket.send({ type: "ack", examId: session.examId });
      }
    },
  });
}

main();
