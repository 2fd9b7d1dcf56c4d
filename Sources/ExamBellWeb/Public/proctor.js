// The proctor page (감독관): the live roster pushed over the WebSocket once a second
// (`{"type":"roster",…}`), counts at the top, the end notice, and after an end the
// candidates whose browsers have not acknowledged it yet. Each candidate's planned end (and
// whether its page has a new one), its end's receipts (told, locked, saved), who is missing
// at which step, and announcements: the proctor may send one to the exam's candidates.
import { sessionToken, fetchJSON, showConnection, connectPage } from "/static/socket.js";
import { t, installLanguageSwitch, formatTime, formatClock, isolate } from "/static/i18n.js";

const token = sessionToken();
const connection = document.getElementById("connection");
let session = null;
let roster = null;
let endDatetime = null;
let connectionState = "connecting";

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function ackCell(ended, acknowledged) {
  return cell(ended ? t(acknowledged ? "proctor.acked" : "proctor.notAcked") : "-", ended ? (acknowledged ? "ok" : "bad") : "");
}

// One receipt of the end: the time it was recorded, or a dash.
function step(time, items) {
  if (!time) return cell("-", "step");
  return cell(items === undefined || items === null ? formatClock(Date.parse(time)) : `${formatClock(Date.parse(time))} (${items})`, "step ok");
}

// How far the page's device clock was from the server's, as its lock reported it: a device
// more than 30 s off is flagged (the SDK keeps the page on the server's clock regardless).
function clockCell(offsetMs) {
  if (offsetMs === undefined || offsetMs === null) return cell("-", "clock");
  const seconds = Math.round(-offsetMs / 1000);
  return cell(t("proctor.clockOff", { seconds: seconds > 0 ? `+${seconds}` : String(seconds) }), Math.abs(offsetMs) > 30000 ? "clock bad" : "clock ok");
}

function render() {
  if (endDatetime) {
    const banner = document.getElementById("end-banner");
    banner.textContent = t("proctor.ended", { time: formatTime(endDatetime) });
    banner.hidden = false;
    document.body.dataset.ended = "true";
  }
  if (!roster) return;
  const completed = roster.status === "completed";
  const candidates = roster.candidates;
  const rows = candidates.map((c) => {
    const tr = document.createElement("tr");
    tr.dataset.candidate = c.candidateId;
    tr.dataset.connected = String(c.connected);
    tr.dataset.acknowledged = String(c.acknowledged);
    tr.append(
      cell(c.candidateId), cell(c.name), cell(t(`status.${c.status}`)),
      cell(t(c.connected ? "proctor.online" : "proctor.offline"), c.connected ? "ok" : "bad"),
      cell(formatTime(c.lastActiveTime)), cell(`${c.answered} / ${roster.itemCount}`),
      // A candidate who ended alone (handed in, own end) shows its ack before the exam ends.
      ackCell(completed || c.status === "completed", c.acknowledged),
      cell(c.scheduledEndDatetime ? formatTime(c.scheduledEndDatetime) : "-"),
      cell(c.hasNewTime === undefined || c.hasNewTime === null ? "-" : t(c.hasNewTime ? "proctor.newTimeOk" : "proctor.newTimePending"),
        c.hasNewTime === false ? "bad" : ""),
      step(c.told), step(c.locked), step(c.saved, c.savedItems), clockCell(c.clockOffsetMs),
    );
    tr.dataset.clockOffsetMs = String(c.clockOffsetMs ?? "");
    tr.dataset.told = String(Boolean(c.told));
    tr.dataset.locked = String(Boolean(c.locked));
    tr.dataset.saved = String(Boolean(c.saved));
    tr.dataset.hasNewTime = String(c.hasNewTime);
    return tr;
  });
  const d = roster.delivery;
  document.getElementById("delivery-counts").textContent = t("delivery.counts", d);
  const ended = candidates.filter((c) => c.status === "completed");
  const missing = (key) => ended.filter((c) => !c[key]).map((c) => c.candidateId);
  document.getElementById("missing").textContent = ended.length === 0 ? "" :
    ["told", "locked", "saved"].map((key) => t(`delivery.missing.${key}`, { ids: missing(key).join(", ") || "-" })).join(" · ");
  document.getElementById("announcement-list").replaceChildren(...(roster.announcements || []).map((a) => {
    const li = document.createElement("li");
    li.dataset.announcement = a.announcementId;
    li.textContent = `${formatTime(a.timestamp)} – ${a.message} (${t("proctor.seen", { seen: a.seen })})`;
    return li;
  }));
  document.getElementById("roster").replaceChildren(...rows);
  const acknowledged = candidates.filter((c) => c.acknowledged).length;
  document.getElementById("count-total").textContent = String(candidates.length);
  document.getElementById("count-connected").textContent = String(candidates.filter((c) => c.connected).length);
  document.getElementById("count-completed").textContent = String(candidates.filter((c) => c.status === "completed").length);
  document.getElementById("count-acknowledged").textContent = completed ? `${acknowledged} / ${candidates.length}` : "-";
  document.getElementById("count-proctors").textContent = String(roster.proctorsConnected);
  const pending = candidates.filter((c) => !c.acknowledged);
  document.getElementById("pending-section").hidden = !completed;
  document.getElementById("pending-none").hidden = pending.length > 0;
  document.getElementById("pending").replaceChildren(...pending.map((c) => {
    const li = document.createElement("li");
    li.dataset.candidate = c.candidateId;
    li.textContent = `${isolate(c.name)} (${c.candidateId}) – ${t(c.connected ? "proctor.online" : "proctor.offline")}`;
    return li;
  }));
}

// The receipts issued so far (the latest 100), fetched every 10 s once a candidate has ended:
// each with the fingerprint its candidate's page shows, so a proctor can compare them.
let receiptsTimer = null;

async function refreshReceipts() {
  try {
    const list = await fetchJSON(`/api/exams/${encodeURIComponent(session.examId)}/receipts?limit=100`, token);
    document.getElementById("receipts-section").hidden = false;
    document.getElementById("receipts-summary").textContent = t("proctor.receipts.count", { count: list.total });
    document.getElementById("receipt-list").replaceChildren(...list.receipts.slice().reverse().map((item) => {
      const tr = document.createElement("tr");
      tr.dataset.candidate = item.receipt.candidateId;
      tr.append(cell(item.receipt.candidateId), cell(item.receipt.endedBy), cell(formatTime(item.receipt.endDatetime)),
        cell(String(item.receipt.answeredCount)), cell(item.fingerprint));
      return tr;
    }));
  } catch (error) {
    document.getElementById("error").textContent = error.message;
  }
}

function watchReceipts() {
  if (receiptsTimer || !roster || !session) return;
  if (roster.status !== "completed" && !roster.candidates.some((c) => c.status === "completed")) return;
  refreshReceipts();
  receiptsTimer = setInterval(refreshReceipts, 10000);
}

let lastRoster = "";

function take(next) {
  const text = JSON.stringify(next);
  if (text === lastRoster) return; // nothing changed: leave the page (and any selection) alone
  lastRoster = text;
  roster = next;
  if (next.endDatetime) endDatetime = next.endDatetime;
  render();
  watchReceipts();
}

async function main() {
  installLanguageSwitch(() => { showConnection(connection, connectionState); render(); });
  const bell = await connectPage(token, connection);
  if (!bell) return;
  session = bell.info;
  if (session.status === "completed") endDatetime = session.endDatetime;
  render();
  // The first roster by HTTP; then the socket node pushes it every second.
  fetchJSON(`/api/exams/${encodeURIComponent(session.examId)}/roster`, token).then(take).catch((error) => {
    document.getElementById("error").textContent = error.message;
  });
  document.getElementById("announce-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = document.getElementById("announce-text");
    try {
      await fetchJSON(`/api/exams/${encodeURIComponent(session.examId)}/announcements`, token, {
        method: "POST", body: { message: text.value.trim() },
      });
      text.value = "";
      document.getElementById("error").textContent = "";
    } catch (error) {
      document.getElementById("error").textContent = error.message;
    }
  });
  // The socket is the browser SDK's; the live roster comes as its other messages.
  bell.on("connection", ({ state }) => { connectionState = state; showConnection(connection, state); });
  bell.on("ended", ({ endDatetime: end }) => {
    endDatetime = end;
    if (roster) roster.status = "completed";
    render();
  });
  bell.on("time", ({ scheduledEndDatetime }) => {
    document.getElementById("planned-end").textContent = t("proctor.plannedEnd", { time: formatTime(scheduledEndDatetime) });
  });
  bell.on("message", (message) => { if (message.type === "roster") take(message); });
}

main();
