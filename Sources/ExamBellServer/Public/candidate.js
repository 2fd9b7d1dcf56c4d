// The candidate page (수험자): the answer sheet, saved to the server as the candidate works,
// the server's clock, and the lock when the exam ends.
//
// Saving: every change marks its item dirty and schedules a save (debounced); a save sends
// the dirty items, and a failed one is retried with backoff. Unsaved answers are also kept in
// localStorage, so a reload before a save loses nothing. On `exam_end` the page collects the
// sheet, disables every control, shows the notice, saves the dirty items one last time (the
// server takes them within its grace window) and acknowledges the end.
import { connectSocket, sessionToken, openSession, fetchJSON, showConnection } from "/static/socket.js";
import { t, installLanguageSwitch, formatTime, formatClock, formatDuration } from "/static/i18n.js";

const SAVE_DEBOUNCE_MS = 800;
const token = sessionToken();
const form = document.getElementById("answers");
const connection = document.getElementById("connection");
const saveState = document.getElementById("save-state");
let session = null;
let ended = false;
let endDatetime = null;
let connectionState = "connecting";
const dirty = new Set();
let saveTimer = null;
let saving = null;
let retryDelay = 1000;
let lastSave = null; // { key, vars } of the save indicator, redrawn on a language switch

function itemCount() { return session.choiceItems + session.shortItems; }
function localKey() { return `exambell:${session.examId}:${session.id}:unsaved`; }

function buildAnswerSheet(saved) {
  form.replaceChildren();
  for (let n = 1; n <= itemCount(); n++) {
    const item = document.createElement("fieldset");
    item.className = "item";
    item.dataset.item = String(n);
    const legend = document.createElement("legend");
    legend.dataset.itemLabel = String(n);
    item.append(legend);
    if (n <= session.choiceItems) {
      for (let choice = 1; choice <= 4; choice++) {
        const label = document.createElement("label");
        const input = document.createElement("input");
        input.type = "radio"; input.name = `q${n}`; input.value = String(choice);
        input.checked = saved[String(n)] === String(choice);
        label.append(input, ` ${choice}`);
        item.append(label);
      }
    } else {
      const input = document.createElement("input");
      input.type = "text"; input.name = `q${n}`; input.maxLength = 500; input.className = "short";
      input.value = saved[String(n)] || "";
      input.setAttribute("aria-labelledby", `legend-${n}`);
      legend.id = `legend-${n}`;
      item.append(input);
    }
    form.append(item);
  }
  labelItems();
}

function labelItems() {
  for (const legend of form.querySelectorAll("legend[data-item-label]")) {
    const n = Number(legend.dataset.itemLabel);
    legend.textContent = t(n <= session.choiceItems ? "candidate.item" : "candidate.shortItem", { n });
  }
  showProgress();
}

function currentAnswers() {
  const answers = {};
  for (let n = 1; n <= itemCount(); n++) {
    const inputs = form.elements[`q${n}`];
    if (!inputs) continue;
    if (n <= session.choiceItems) {
      const picked = [...form.querySelectorAll(`input[name="q${n}"]`)].find((input) => input.checked);
      answers[String(n)] = picked ? picked.value : "";
    } else {
      answers[String(n)] = inputs.value;
    }
  }
  return answers;
}

function showProgress() {
  const answered = Object.values(currentAnswers()).filter((value) => value !== "").length;
  document.getElementById("progress").textContent = t("candidate.answered", { answered, total: itemCount() });
}

function showSave(key, vars = {}) {
  lastSave = { key, vars };
  saveState.textContent = t(key, vars);
  saveState.dataset.state = key.split(".")[1];
}

function rememberLocally() {
  const all = currentAnswers();
  const unsaved = Object.fromEntries([...dirty].map((item) => [item, all[item]]));
  localStorage.setItem(localKey(), JSON.stringify(unsaved));
}

function scheduleSave(delay = SAVE_DEBOUNCE_MS) {
  clearTimeout(saveTimer);
  saveTimer = setTimeout(() => { save(); }, delay);
}

// Sends the dirty items; returns when this save (and one already running) is over.
async function save() {
  clearTimeout(saveTimer);
  if (saving) { await saving; if (dirty.size === 0) return; }
  if (dirty.size === 0) return;
  const all = currentAnswers();
  const items = [...dirty];
  const answers = Object.fromEntries(items.map((item) => [item, all[item]]));
  for (const item of items) dirty.delete(item);
  showSave("candidate.saving");
  saving = (async () => {
    try {
      const result = await fetchJSON("/api/answers", token, { method: "PUT", body: { answers }, keepalive: true });
      retryDelay = 1000;
      showSave("candidate.saved", { time: formatClock(Date.parse(result.savedAt)) });
      document.body.dataset.saved = String(Date.now());
      rememberLocally();
    } catch (error) {
      if (error.status === 409 && error.code === "exam_ended") {
        showSave("candidate.saveRefused", { message: error.message });
        lock(endDatetime);
        return;
      }
      for (const item of items) dirty.add(item);
      rememberLocally();
      if (error.status >= 400 && error.status < 500 && error.status !== 408 && error.status !== 429) {
        showSave("candidate.saveFailed", { message: error.message });
        return;
      }
      showSave("candidate.saveFailed", { message: error.message });
      retryDelay = Math.min(30000, retryDelay * 2);
      scheduleSave(retryDelay * (0.5 + Math.random()));
    } finally {
      saving = null;
    }
  })();
  await saving;
}

function lock(end) {
  if (ended) return;
  ended = true;
  endDatetime = end || endDatetime;
  for (const control of form.querySelectorAll("input, textarea, select, button")) control.disabled = true;
  form.setAttribute("aria-disabled", "true");
  showEndTime();
  const notice = document.getElementById("end-notice");
  notice.hidden = false;
  document.body.dataset.ended = "true";
  document.getElementById("review").focus();
}

function showEndTime() {
  document.getElementById("end-time").textContent = endDatetime ? t("end.time", { time: formatTime(endDatetime) }) : "";
}

function tickClock() {
  if (!session) return;
  const now = Date.now() + session.clockOffsetMs;
  document.getElementById("clock").textContent = formatClock(now);
  const remaining = document.getElementById("remaining");
  if (ended) { remaining.textContent = t("status.completed"); return; }
  if (!session.scheduledEndDatetime) { remaining.textContent = t("candidate.noScheduledEnd"); return; }
  const left = Math.floor((Date.parse(session.scheduledEndDatetime) - now) / 1000);
  if (left < 0) { remaining.textContent = t("candidate.overdue"); return; }
  remaining.textContent = formatDuration(left);
}

function redraw() {
  showConnection(connection, connectionState);
  if (session) { labelItems(); showEndTime(); tickClock(); }
  if (lastSave) showSave(lastSave.key, lastSave.vars);
}

async function main() {
  installLanguageSwitch(redraw);
  showConnection(connection, "connecting");
  session = await openSession(token);
  if (!session) return;
  endDatetime = session.endDatetime;
  const { answers: saved } = await fetchJSON("/api/answers", token).catch(() => ({ answers: {} }));
  const unsaved = session.status === "in_progress" ? JSON.parse(localStorage.getItem(localKey()) || "{}") : {};
  buildAnswerSheet({ ...saved, ...unsaved });
  for (const item of Object.keys(unsaved)) dirty.add(item);
  if (dirty.size > 0) scheduleSave(0);
  tickClock();
  setInterval(tickClock, 1000);
  if (session.status === "completed") lock(session.endDatetime);
  if (session.status === "scheduled") {
    document.getElementById("not-started").hidden = false;
    for (const control of form.querySelectorAll("input")) control.disabled = true;
  }
  form.addEventListener("input", (event) => {
    if (ended) return;
    const name = event.target.name || "";
    if (!name.startsWith("q")) return;
    dirty.add(name.slice(1));
    rememberLocally();
    showProgress();
    showSave("candidate.unsaved");
    scheduleSave();
  });
  document.getElementById("review").addEventListener("click", () => {
    document.getElementById("end-notice").classList.add("minimised");
  });
  const socket = connectSocket({
    socketUrl: session.socketUrl,
    token,
    onState: (state) => { connectionState = state; showConnection(connection, state); },
    onMessage: (message) => {
      if (message.type !== "exam_end" || message.examId !== session.examId) return;
      // Collect first: disabled controls still hold their values, and dirty items are known.
      lock(message.timestamp);
      socket.send({ type: "ack", examId: session.examId });
      save();
    },
  });
}

main();
