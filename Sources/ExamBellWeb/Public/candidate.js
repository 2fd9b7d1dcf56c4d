// The candidate page (수험자): the answer sheet, saved to the server as the candidate works,
// the server's clock, and the lock when the exam ends.
//
// Saving: every change marks its item dirty and schedules a save (debounced); a save sends
// the dirty items, and a failed one is retried with backoff. Unsaved answers are also kept in
// localStorage, so a reload before a save loses nothing. On `exam_end` the page collects the
// sheet, disables every control, shows the notice, acknowledges the end, reports the lock
// (`locked`), and sends its whole sheet once more as its final save (`"final":true`, the
// `saved` step; the server takes it within its grace window, and keeps a later one as a late
// submission).
//
// The exam day: a new time moves the remaining time at once; announcements show until
// dismissed; "제출" hands in after a confirmation. The socket, the server's clock, every
// acknowledgement, what was missed while away and the lock at the planned end while the
// connection is down are the browser SDK's (`/sdk/exambell.js`), as on any platform's page:
// this page only draws, saves and locks.
import { sessionToken, fetchJSON, showConnection, connectPage } from "/static/socket.js";
import { t, installLanguageSwitch, formatTime, formatClock, formatDuration } from "/static/i18n.js";

const SAVE_DEBOUNCE_MS = 800;
const token = sessionToken();
const form = document.getElementById("answers");
const connection = document.getElementById("connection");
const saveState = document.getElementById("save-state");
let bell = null;
let session = null;
let ended = false;
let endDatetime = null;
let connectionState = "connecting";
const dirty = new Set();
let saveTimer = null;
let saving = null;
let retryDelay = 1000;
let lastSave = null; // { key, vars } of the save indicator, redrawn on a language switch
let lockedLocally = false; // locked by the page's own clock, not (yet) by the server
let finalSent = false; // the final save reached the server
let finalTimer = null;
let finalDelay = 1000;
let lastTimeNotice = null;

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
        finalSave();
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

function lock(end, { local = false } = {}) {
  if (ended) { if (!local) lockedLocally = false; return; }
  ended = true;
  lockedLocally = local;
  endDatetime = end || endDatetime;
  for (const control of form.querySelectorAll("input, textarea, select, button")) control.disabled = true;
  form.setAttribute("aria-disabled", "true");
  document.getElementById("hand-in").disabled = true;
  document.getElementById("hand-in-dialog").hidden = true;
  showEndTime();
  const notice = document.getElementById("end-notice");
  notice.hidden = false;
  document.body.dataset.ended = "true";
  if (local) document.body.dataset.lockedLocally = "true";
  document.getElementById("review").focus();
}

// The server says the exam still runs for this page (its clock had run ahead, or the time
// was extended while it was away): the page opens again.
function unlock() {
  ended = false;
  lockedLocally = false;
  finalSent = false;
  clearTimeout(finalTimer);
  for (const control of form.querySelectorAll("input, textarea, select, button")) control.disabled = false;
  form.removeAttribute("aria-disabled");
  document.getElementById("hand-in").disabled = false;
  document.getElementById("end-notice").hidden = true;
  delete document.body.dataset.ended;
  delete document.body.dataset.lockedLocally;
}

// The page's last save after its lock: the whole sheet, marked final; retried until the
// server has it (or refuses it for good).
let finalSaving = null;

async function finalSave() {
  clearTimeout(finalTimer);
  if (finalSent) return;
  if (finalSaving) return finalSaving;
  finalSaving = sendFinal().finally(() => { finalSaving = null; });
  return finalSaving;
}

async function sendFinal() {
  clearTimeout(saveTimer);
  if (saving) await saving;
  const answers = currentAnswers();
  try {
    await fetchJSON("/api/answers", token, { method: "PUT", body: { answers, final: true }, keepalive: true });
    showSave("candidate.saved", { time: formatClock(bell.serverNow()) });
  } catch (error) {
    if (!(error.status >= 400 && error.status < 500) || error.status === 408 || error.status === 429) {
      showSave("candidate.saveFailed", { message: error.message });
      finalDelay = Math.min(30000, finalDelay * 2);
      finalTimer = setTimeout(finalSave, finalDelay * (0.5 + Math.random()));
      return;
    }
    // Refused after the grace window: the server kept it as a late submission for the operator.
    showSave("candidate.saveLate", { message: error.message });
  }
  finalSent = true;
  dirty.clear();
  localStorage.removeItem(localKey());
  document.body.dataset.finalSaved = "true";
  showReceipt();
}

// The signed receipt, once the server issues it (when the grace window after the end has
// passed): its fingerprint, and the file to keep. Asked every few seconds until then (for at
// most five minutes; the page's call budget allows it).
let receiptTimer = null;
async function showReceipt(attempt = 0) {
  clearTimeout(receiptTimer);
  let signed;
  try {
    signed = await bell.receipt();
  } catch (error) {
    if (attempt < 100 && (error.code === "receipt_not_ready" || !(error.status >= 400 && error.status < 500))) {
      receiptTimer = setTimeout(() => showReceipt(attempt + 1), Math.min(5000, 1000 * (attempt + 1)));
    }
    return;
  }
  const box = document.getElementById("receipt");
  document.getElementById("receipt-fingerprint").textContent = signed.fingerprint;
  const link = document.getElementById("receipt-download");
  const file = new Blob([JSON.stringify(signed, null, 2) + "\n"], { type: "application/json" });
  link.href = URL.createObjectURL(file);
  link.download = `receipt-${signed.receipt.examId}-${signed.receipt.candidateId}.json`;
  box.hidden = false;
  document.body.dataset.receipt = signed.fingerprint;
}

// This page's exam (or this candidate) ended: lock, say so, report the lock, save the last
// time. At its planned end the page locks by the server's clock (the SDK's `local` end), also
// while its connection is down, and reports once back.
function ended_(event) {
  lock(event.endDatetime, { local: Boolean(event.local) });
  bell.reportLocked();
  finalSave();
}

function showTimeNotice() {
  const box = document.getElementById("time-notice");
  box.hidden = !lastTimeNotice;
  if (lastTimeNotice) box.textContent = t("candidate.timeChanged", { time: formatTime(lastTimeNotice) });
}

function setPlannedEnd(end) {
  if (!end) return;
  session.scheduledEndDatetime = end;
  lastTimeNotice = end;
  showTimeNotice();
  tickClock();
}

// Announcements: the latest few (MAX_SHOWN) shown until dismissed, with how many there are in
// all; never a stack that pushes the answer sheet down. Dismissed ones are remembered on this
// device.
function dismissedKey() { return `exambell:${session.examId}:${session.id}:dismissed`; }
const shownAnnouncements = new Map();
const MAX_SHOWN = 3;
const knownAnnouncements = new Set();
let announcementTotal = 0;

function countAnnouncements(total = 0) {
  announcementTotal = Math.max(announcementTotal, total, knownAnnouncements.size);
  const count = document.getElementById("announcement-count");
  count.hidden = announcementTotal <= shownAnnouncements.size;
  count.textContent = t("candidate.announcementCount", { count: announcementTotal });
}

function showAnnouncements({ announcements, total }) {
  announcements.forEach(showAnnouncement);
  countAnnouncements(total);
}

function showAnnouncement(notice) {
  knownAnnouncements.add(notice.announcementId);
  const dismissed = JSON.parse(localStorage.getItem(dismissedKey()) || "[]");
  if (dismissed.includes(notice.announcementId) || shownAnnouncements.has(notice.announcementId)) return countAnnouncements();
  const box = document.createElement("div");
  box.className = "announcement";
  box.setAttribute("role", "alert");
  box.dataset.announcement = notice.announcementId;
  const text = document.createElement("p");
  text.textContent = notice.message;
  const when = document.createElement("span");
  when.className = "muted";
  when.textContent = formatTime(notice.timestamp);
  const close = document.createElement("button");
  close.type = "button";
  close.className = "secondary";
  close.dataset.i18n = "candidate.dismiss";
  close.textContent = t("candidate.dismiss");
  close.addEventListener("click", () => {
    box.remove();
    shownAnnouncements.delete(notice.announcementId);
    localStorage.setItem(dismissedKey(), JSON.stringify([...dismissed, notice.announcementId]));
    bell.announcementSeen(notice.announcementId);
  });
  box.append(text, when, close);
  shownAnnouncements.set(notice.announcementId, box);
  document.getElementById("announcements").append(box);
  // Only the latest few stay on screen; the count says there were more.
  for (const [id, older] of shownAnnouncements) {
    if (shownAnnouncements.size <= MAX_SHOWN) break;
    older.remove();
    shownAnnouncements.delete(id);
  }
  countAnnouncements();
}

function showEndTime() {
  document.getElementById("end-time").textContent = endDatetime ? t("end.time", { time: formatTime(endDatetime) }) : "";
}

function tickClock() {
  if (!session) return;
  const now = bell.serverNow();
  document.getElementById("clock").textContent = formatClock(now);
  const remaining = document.getElementById("remaining");
  remaining.dataset.end = session.scheduledEndDatetime || "";
  if (ended) { remaining.textContent = t("status.completed"); return; }
  if (!session.scheduledEndDatetime) { remaining.textContent = t("candidate.noScheduledEnd"); return; }
  const left = Math.floor((Date.parse(session.scheduledEndDatetime) - now) / 1000);
  if (left < 0) {
    remaining.textContent = t("candidate.overdue");
    return;
  }
  remaining.textContent = formatDuration(left);
}

function redraw() {
  showConnection(connection, connectionState);
  if (session) { labelItems(); showEndTime(); tickClock(); showTimeNotice(); }
  if (lastSave) showSave(lastSave.key, lastSave.vars);
}

async function main() {
  installLanguageSwitch(redraw);
  bell = await connectPage(token, connection);
  if (!bell) return;
  session = bell.info;
  endDatetime = session.endDatetime;
  const { answers: saved } = await fetchJSON("/api/answers", token).catch(() => ({ answers: {} }));
  const unsaved = session.status === "in_progress" ? JSON.parse(localStorage.getItem(localKey()) || "{}") : {};
  buildAnswerSheet({ ...saved, ...unsaved });
  for (const item of Object.keys(unsaved)) dirty.add(item);
  if (dirty.size > 0) scheduleSave(0);
  tickClock();
  setInterval(tickClock, 1000);
  if (session.status === "completed") { lock(session.endDatetime); finalSent = true; }
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
  // "제출": ask first; then save what is pending, hand in, lock.
  document.getElementById("hand-in").addEventListener("click", () => {
    document.getElementById("hand-in-dialog").hidden = false;
    document.getElementById("hand-in-confirm").focus();
  });
  document.getElementById("hand-in-cancel").addEventListener("click", () => {
    document.getElementById("hand-in-dialog").hidden = true;
  });
  document.getElementById("hand-in-confirm").addEventListener("click", async () => {
    document.getElementById("hand-in-confirm").disabled = true;
    try {
      await save();
      const result = await fetchJSON("/api/hand-in", token, { method: "POST" });
      document.body.dataset.handedIn = "true";
      ended_({ endDatetime: result.endDatetime });
    } catch (error) {
      document.getElementById("hand-in-error").textContent = t("candidate.handInFailed", { message: error.message });
    } finally {
      document.getElementById("hand-in-confirm").disabled = false;
    }
  });
  bell.on("connection", ({ state }) => {
    connectionState = state;
    showConnection(connection, state);
  });
  bell.on("ended", ended_);
  // Back after an offline lock, the server says the exam still runs here (time was added).
  bell.on("resumed", ({ scheduledEndDatetime }) => { unlock(); setPlannedEnd(scheduledEndDatetime); });
  bell.on("confirmed", ({ endDatetime: end }) => {
    lockedLocally = false;
    endDatetime = end;
    delete document.body.dataset.lockedLocally;
    showEndTime();
  });
  bell.on("time", ({ scheduledEndDatetime }) => setPlannedEnd(scheduledEndDatetime));
  bell.on("announcement", showAnnouncement);
  fetchJSON("/api/announcements", token).then(showAnnouncements).catch(() => {});
  // Back online: a final save waiting for its retry goes at once.
  window.addEventListener("online", () => { if (ended && !finalSent) { finalDelay = 1000; finalSave(); } });
}

main();
