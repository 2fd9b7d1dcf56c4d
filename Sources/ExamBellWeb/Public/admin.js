// The admin console (관리 서버 UI): every action is a call of the web server's JSON API.
// An operator logs in with name and password: the server sets an HttpOnly session cookie,
// so a reload stays logged in (GET /api/me), and each state-changing call carries the
// session's CSRF token. The bootstrap admin token (first setup) is kept in this tab's
// sessionStorage only. Admins also manage operators; everyone manages their API tokens.
// The list and the open exam
// (delivery progress, audit log) refresh every two seconds. A running exam's panel moves
// its planned end (everyone or listed candidates, previewed before it is confirmed, reason
// required), ends one candidate, and sends announcements; the receipts of the end (told,
// locked, saved, who is missing at which step) and late submissions show as they come.
import { t, installLanguageSwitch, formatTime, isolate } from "/static/i18n.js";
import { fetchJSON } from "/static/socket.js";

const errorBox = document.getElementById("error");
const infoBox = document.getElementById("info");
let token = sessionStorage.getItem("exambell:admin-token") || "";
let me = null; // { name, role, csrfToken } once logged in
let exams = [];
let selected = null; // exam id of the open exam
let detail = null; // { exam, roster, audit }
let pendingEnd = null;
let lastInfo = null;
let refreshFailed = false; // the error shown is the list's own, cleared when the list loads again

function api(method, path, body) {
  const headers = !token && me?.csrfToken && method !== "GET" ? { "X-CSRF-Token": me.csrfToken } : {};
  return fetchJSON(`/api/${path}`, token || null, { method, body, headers });
}

function info(key, vars) {
  lastInfo = key ? { key, vars } : null;
  infoBox.hidden = !key;
  infoBox.textContent = key ? t(key, vars) : "";
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  if (className) td.className = className;
  return td;
}

function button(key, className, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = t(key);
  b.className = className;
  b.dataset.action = key.split(".")[1];
  b.addEventListener("click", onClick);
  return b;
}

function actionsFor(exam) {
  const actions = [];
  if (exam.status === "scheduled") actions.push(button("admin.start", "secondary", () => act(() => api("POST", `exams/${exam.examId}/start`))));
  if (exam.status === "in_progress") actions.push(button("admin.end", "danger", () => askEnd(exam)));
  return actions;
}

let renderedList = "";
let renderedDetail = "";

// Redraws only what changed, so that a button is never replaced under the operator's pointer.
function renderList(force = false) {
  const key = JSON.stringify([exams, selected]);
  if (!force && key === renderedList) return;
  renderedList = key;
  document.getElementById("no-exams").hidden = exams.length > 0;
  const rows = exams.map((exam) => {
    const tr = document.createElement("tr");
    tr.dataset.exam = exam.examId;
    tr.dataset.status = exam.status;
    if (exam.examId === selected) tr.className = "selected";
    tr.append(cell(exam.examId), cell(exam.title), cell(t(`status.${exam.status}`)), cell(String(exam.candidates.total)),
      cell(`${exam.connected.candidates} / ${exam.connected.proctors}`),
      cell(exam.status === "completed" ? `${exam.acknowledged} / ${exam.candidates.total}` : "-"),
      cell(formatTime(exam.endDatetime)));
    const actions = document.createElement("td");
    actions.append(button("admin.open", "secondary", () => open(exam.examId)), ...actionsFor(exam));
    tr.append(actions);
    return tr;
  });
  document.getElementById("exams").replaceChildren(...rows);
}

function renderDetail(force = false) {
  const section = document.getElementById("detail");
  section.hidden = !detail;
  if (!detail) return;
  const key = JSON.stringify(detail);
  if (!force && key === renderedDetail) return;
  renderedDetail = key;
  const { exam, roster, audit, auditHead, receipts } = detail;
  section.dataset.exam = exam.examId;
  section.dataset.status = exam.status;
  document.getElementById("detail-title").textContent = t("admin.detail", { examId: exam.examId, title: isolate(exam.title) });
  document.getElementById("detail-actions").replaceChildren(...actionsFor(exam));
  const lines = [t("admin.detail.status", { status: t(`status.${exam.status}`) }),
    t("admin.detail.items", { choice: exam.choiceItems, short: exam.shortItems })];
  if (exam.scheduledEndDatetime) lines.push(t("admin.detail.scheduledEnd", { time: formatTime(exam.scheduledEndDatetime) }));
  if (exam.endDatetime) lines.push(t("admin.detail.endedBy", { time: formatTime(exam.endDatetime), actor: exam.endedBy || "", reason: exam.endReason || "-" }));
  document.getElementById("detail-info").textContent = lines.join(" · ");
  document.getElementById("registration").hidden = exam.status === "completed";

  const completed = exam.status === "completed";
  document.getElementById("delivery").hidden = !completed;
  if (completed && roster) {
    const total = roster.candidates.length;
    const acknowledged = roster.candidates.filter((c) => c.acknowledged).length;
    document.getElementById("delivery-progress").textContent = t("admin.delivery.progress", { acknowledged, total });
    const bar = document.getElementById("delivery-bar");
    bar.max = Math.max(total, 1); bar.value = acknowledged;
    const pending = roster.candidates.filter((c) => !c.acknowledged);
    document.getElementById("delivery-none").hidden = pending.length > 0;
    document.getElementById("delivery-pending-block").hidden = pending.length === 0;
    document.getElementById("delivery-pending").replaceChildren(...pending.map((c) => {
      const li = document.createElement("li");
      li.dataset.candidate = c.candidateId;
      li.textContent = `${isolate(c.name)} (${c.candidateId}) – ${t(c.connected ? "proctor.online" : "proctor.offline")}`;
      return li;
    }));
  }
  renderExamDay(exam, roster);
  document.getElementById("audit-head").textContent = auditHead || "-";
  document.getElementById("receipts-summary").textContent = t("admin.receipts.count", { count: receipts ? receipts.total : 0 });
  document.getElementById("receipt-list").replaceChildren(...(receipts ? receipts.receipts : []).slice().reverse().map((item) => {
    const tr = document.createElement("tr");
    tr.dataset.candidate = item.receipt.candidateId;
    tr.append(cell(item.receipt.candidateId), cell(item.receipt.endedBy), cell(formatTime(item.receipt.endDatetime)),
      cell(String(item.receipt.answeredCount)), cell(item.fingerprint));
    return tr;
  }));
  document.getElementById("audit").replaceChildren(...(audit || []).slice().reverse().map((entry) => {
    const tr = document.createElement("tr");
    tr.dataset.action = entry.action;
    tr.append(cell(formatTime(entry.at)), cell(entry.actor), cell(entry.action),
      cell([entry.reason, entry.detail].filter(Boolean).join(" – "), "wrap"));
    return tr;
  }));
}

async function refresh() {
  try {
    // One page (the newest): the console never draws every exam there is.
    const page = await api("GET", "exams");
    exams = page.exams;
    document.getElementById("more-exams").hidden = !page.next;
    if (selected) {
      const exam = exams.find((e) => e.examId === selected) ?? await api("GET", `exams/${selected}`).catch(() => null);
      if (exam) {
        const [roster, { entries, head }, late, receipts] = await Promise.all([
          api("GET", `exams/${selected}/roster`), api("GET", `exams/${selected}/audit`), api("GET", `exams/${selected}/late-submissions`),
          exam.status === "scheduled" ? null : api("GET", `exams/${selected}/receipts`).catch(() => null),
        ]);
        detail = { exam, roster, audit: entries, auditHead: head, late: late.lateSubmissions, receipts };
      } else {
        selected = null; detail = null;
      }
    }
    if (refreshFailed) { errorBox.textContent = ""; refreshFailed = false; }
    renderList();
    renderDetail();
    await refreshAccounts();
  } catch (error) {
    if (error.status === 401) return logout(t(token ? "admin.badToken" : "admin.sessionEnded"));
    errorBox.textContent = error.message;
    refreshFailed = true;
  }
}

// The exam report (one row a candidate): drawn when asked, not on every refresh.
const REPORT_COLUMNS = ["candidateId", "name", "status", "endDatetime", "endedBy", "told", "locked", "saved", "lastSavedAt",
  "answeredCount", "disconnects", "offlineSeconds", "timeChanges", "answersSha256"];

function clearReport() {
  document.getElementById("report-table").hidden = true;
  document.getElementById("report-rows").replaceChildren();
  document.getElementById("report-summary").textContent = "";
}

async function showReport() {
  if (!selected) return;
  const report = await api("GET", `exams/${selected}/report`);
  document.getElementById("report-head").replaceChildren(...REPORT_COLUMNS.map((name) => {
    const th = document.createElement("th");
    th.textContent = name;
    return th;
  }));
  document.getElementById("report-rows").replaceChildren(...report.candidates.map((row) => {
    const tr = document.createElement("tr");
    tr.dataset.candidate = row.candidateId;
    tr.append(...REPORT_COLUMNS.map((name) => {
      const value = row[name];
      if (name === "timeChanges") {
        return cell(value.map((c) => `${formatTime(c.at)} ${c.by} → ${formatTime(c.scheduledEndDatetime)}${c.reason ? ` (${c.reason})` : ""}`).join("; "), "wrap");
      }
      if (["endDatetime", "told", "locked", "saved", "lastSavedAt"].includes(name)) return cell(value ? formatTime(value) : "-");
      if (name === "name") return cell(isolate(value));
      return cell(value === null || value === undefined ? "-" : String(value));
    }));
    return tr;
  }));
  document.getElementById("report-table").hidden = false;
  document.getElementById("report-summary").textContent = t("admin.report.summary", {
    count: report.candidates.length, pending: report.receiptsPending, time: formatTime(report.generatedAt) });
}

// The CSV is fetched with the console's credentials and handed to the browser as a file.
async function downloadReport() {
  if (!selected) return;
  const response = await fetch(`/api/exams/${encodeURIComponent(selected)}/report?format=csv`,
    { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  if (!response.ok) throw Object.assign(new Error(t("admin.report.failed", { status: response.status })), { status: response.status });
  const link = document.getElementById("report-download");
  URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(await response.blob());
  link.download = `${selected}-report.csv`;
  link.click();
}

document.getElementById("report-show").addEventListener("click", () => act(showReport));
document.getElementById("report-csv").addEventListener("click", () => act(downloadReport));

async function open(examId) {
  selected = examId;
  document.getElementById("links").replaceChildren();
  clearReport();
  await refresh();
  document.getElementById("detail").scrollIntoView({ block: "start" });
}

async function act(action) {
  try {
    errorBox.textContent = "";
    await action();
  } catch (error) {
    info(null);
    errorBox.textContent = error.message;
  }
  await refresh();
}

function askEnd(exam) {
  pendingEnd = exam;
  document.getElementById("end-question").textContent = t("admin.endQuestion", { examId: exam.examId, title: isolate(exam.title) });
  document.getElementById("end-reason").value = "";
  document.getElementById("end-dialog").showModal();
}

document.getElementById("end-form").addEventListener("submit", (event) => {
  if (event.submitter && event.submitter.value !== "confirm") { pendingEnd = null; return; }
  const reason = document.getElementById("end-reason").value.trim();
  if (!reason || !pendingEnd) { event.preventDefault(); document.getElementById("end-reason").focus(); return; }
  const exam = pendingEnd;
  pendingEnd = null;
  selected = exam.examId;
  act(async () => {
    const result = await api("POST", `exams/${exam.examId}/end`, { reason });
    info(result.result === "completed" ? "admin.ended" : "admin.alreadyEnded", { examId: exam.examId, time: formatTime(result.endDatetime) });
  });
});

document.getElementById("create-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const examId = document.getElementById("new-id").value.trim();
  const body = {
    examId,
    title: document.getElementById("new-title").value.trim(),
    choiceItems: Number(document.getElementById("new-choice").value || 0),
    shortItems: Number(document.getElementById("new-short").value || 0),
  };
  const end = document.getElementById("new-end").value;
  if (end) body.scheduledEndDatetime = new Date(end).toISOString().replace(/\.\d{3}Z$/, "Z");
  act(async () => {
    await api("POST", "exams", body);
    event.target.reset();
    info("admin.created", { examId });
    selected = examId;
  });
});

// "id,name" lines (pasted or from a CSV file); a header line and blank lines are skipped.
function parsePeople(text, idField) {
  const people = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const line = raw.trim();
    if (!line) return;
    const [id, ...rest] = line.split(",").map((part) => part.trim().replace(/^"(.*)"$/, "$1"));
    if (index === 0 && /^(candidate_?id|proctor_?id|id|수험번호|감독관\s*id|아이디)$/i.test(id)) return;
    const name = rest.join(",").trim();
    if (!id || !name) throw new Error(t("admin.csvBadLine", { line: index + 1 }));
    people.push({ [idField]: id, name });
  });
  if (people.length === 0) throw new Error(t("admin.csvEmpty"));
  return people;
}

document.getElementById("candidates-file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (file) document.getElementById("candidates-text").value = await file.text();
});

document.getElementById("candidates-form").addEventListener("submit", (event) => {
  event.preventDefault();
  act(async () => {
    const candidates = parsePeople(document.getElementById("candidates-text").value, "candidateId");
    const result = await api("POST", `exams/${selected}/candidates`, { candidates });
    document.getElementById("candidates-text").value = "";
    document.getElementById("candidates-file").value = "";
    info("admin.registered", result);
  });
});

document.getElementById("proctors-form").addEventListener("submit", (event) => {
  event.preventDefault();
  act(async () => {
    const proctors = parsePeople(document.getElementById("proctors-text").value, "proctorId");
    const result = await api("POST", `exams/${selected}/proctors`, { proctors });
    document.getElementById("proctors-text").value = "";
    info("admin.registered", result);
  });
});

document.getElementById("make-links").addEventListener("click", () => act(async () => {
  const examId = selected;
  const rows = [];
  const candidateIds = (detail?.roster?.candidates || []).map((c) => c.candidateId);
  for (const [role, ids] of [["candidate", candidateIds]]) {
    if (ids.length === 0) continue;
    const { sessions } = await api("POST", `exams/${examId}/sessions`, { role, ids });
    rows.push(...sessions.map((s) => ({ role, ...s })));
  }
  const { proctors } = await api("GET", `exams/${examId}/proctors`);
  if (proctors.length > 0) {
    const { sessions } = await api("POST", `exams/${examId}/sessions`, { role: "proctor", ids: proctors.map((p) => p.proctorId) });
    rows.push(...sessions.map((s) => ({ role: "proctor", ...s })));
  }
  document.getElementById("links").replaceChildren(...rows.map((row) => {
    const tr = document.createElement("tr");
    const link = document.createElement("a");
    link.href = row.pageUrl; link.textContent = row.pageUrl; link.target = "_blank"; link.rel = "noopener";
    const td = cell("", "wrap"); td.append(link);
    tr.append(cell(row.role), cell(row.id), td);
    return tr;
  }));
}));

// MARK: the exam day

function ids(text) {
  return text.split(/[\s,]+/).map((id) => id.trim()).filter(Boolean);
}

function renderExamDay(exam, roster) {
  document.getElementById("exam-day").hidden = exam.status !== "in_progress";
  const ended = roster ? roster.candidates.filter((c) => c.status === "completed") : [];
  document.getElementById("receipts").hidden = ended.length === 0 && !(detail.late || []).length;
  if (roster) {
    document.getElementById("receipt-counts").textContent = t("delivery.counts", roster.delivery);
    const missing = (key) => ended.filter((c) => !c[key]).map((c) => c.candidateId);
    document.getElementById("receipt-missing").textContent =
      ["told", "locked", "saved"].map((key) => t(`delivery.missing.${key}`, { ids: missing(key).join(", ") || "-" })).join(" · ");
    const step = (time, items) => cell(time ? formatTime(time) + (items === undefined || items === null ? "" : ` (${items})`) : "-", time ? "ok" : "bad");
    document.getElementById("receipt-rows").replaceChildren(...ended.map((c) => {
      const tr = document.createElement("tr");
      tr.dataset.candidate = c.candidateId;
      tr.append(cell(c.candidateId), cell(c.name), cell(t(`status.${c.status}`)), step(c.told), step(c.locked), step(c.saved, c.savedItems));
      return tr;
    }));
    document.getElementById("announcement-list").replaceChildren(...(roster.announcements || []).map((a) => {
      const li = document.createElement("li");
      li.dataset.announcement = a.announcementId;
      li.textContent = `${formatTime(a.timestamp)} – ${a.message} (${t("proctor.seen", { seen: a.seen })})`;
      return li;
    }));
  }
  const late = detail.late || [];
  document.getElementById("late-block").hidden = late.length === 0;
  document.getElementById("late-rows").replaceChildren(...late.map((row) => {
    const tr = document.createElement("tr");
    tr.dataset.candidate = row.candidateId;
    tr.append(cell(row.candidateId), cell(t("late.after", { time: formatTime(row.arrivedAt), seconds: row.secondsAfterEnd })),
      cell(Object.entries(row.answers).map(([item, answer]) => `${item}: ${answer}`).join(", "), "wrap"));
    tr.dataset.decision = row.decision || "";
    if (row.decision) {
      tr.append(cell(t(`late.${row.decision}`, { actor: row.decidedBy || "" })));
    } else {
      const actions = document.createElement("td");
      actions.append(button("late.accept", "secondary", () => decideLate(row.id, "accept")),
        button("late.reject", "danger", () => decideLate(row.id, "reject")));
      tr.append(actions);
    }
    return tr;
  }));
}

function decideLate(id, decision) {
  const reason = document.getElementById("late-reason").value.trim();
  if (!reason) { errorBox.textContent = t("time.reasonRequired"); document.getElementById("late-reason").focus(); return; }
  act(async () => {
    await api("POST", `exams/${selected}/late-submissions/${id}`, { decision, reason });
    document.getElementById("late-reason").value = "";
  });
}

let pendingTime = null; // the body of a previewed time change, sent on confirmation

function timeBody() {
  const body = { reason: document.getElementById("time-reason").value.trim() };
  if (document.querySelector('input[name="time-scope"]:checked').value === "candidates") {
    body.candidateIds = ids(document.getElementById("time-ids").value);
  }
  if (document.querySelector('input[name="time-mode"]:checked').value === "minutes") {
    body.addMinutes = Number(document.getElementById("time-minutes").value);
  } else {
    const at = document.getElementById("time-at").value;
    body.scheduledEndDatetime = at ? new Date(at).toISOString().replace(/\.\d{3}Z$/, "Z") : "";
  }
  return body;
}

document.getElementById("time-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const body = timeBody();
  if (!body.reason) { errorBox.textContent = t("time.reasonRequired"); document.getElementById("time-reason").focus(); return; }
  act(async () => {
    const preview = await api("POST", `exams/${selected}/time`, { ...body, preview: true });
    pendingTime = body;
    document.getElementById("time-preview-summary").textContent = t("time.previewSummary", {
      count: preview.affected.length, time: formatTime(preview.scheduledEndDatetime),
    });
    document.getElementById("time-preview-rows").replaceChildren(...preview.affected.map((row) => {
      const tr = document.createElement("tr");
      tr.dataset.candidate = row.candidateId;
      tr.append(cell(row.candidateId), cell(formatTime(row.scheduledEndDatetime)));
      return tr;
    }));
    document.getElementById("time-preview").hidden = false;
  });
});

document.getElementById("time-cancel").addEventListener("click", () => {
  pendingTime = null;
  document.getElementById("time-preview").hidden = true;
});

document.getElementById("time-confirm").addEventListener("click", () => {
  const body = pendingTime;
  if (!body) return;
  pendingTime = null;
  document.getElementById("time-preview").hidden = true;
  act(async () => {
    const result = await api("POST", `exams/${selected}/time`, body);
    info("time.changed", { time: formatTime(result.scheduledEndDatetime), count: result.candidates.length });
  });
});

document.getElementById("candidate-end-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const candidateId = document.getElementById("candidate-end-id").value.trim();
  const reason = document.getElementById("candidate-end-reason").value.trim();
  act(async () => {
    const result = await api("POST", `exams/${selected}/candidates/${encodeURIComponent(candidateId)}/end`, { reason });
    event.target.reset();
    info(result.result === "completed" ? "candidateEnd.done" : "candidateEnd.already", { candidateId, time: formatTime(result.endDatetime) });
  });
});

document.getElementById("announce-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const message = document.getElementById("announce-text").value.trim();
  const listed = ids(document.getElementById("announce-ids").value);
  act(async () => {
    await api("POST", `exams/${selected}/announcements`, listed.length ? { message, candidateIds: listed } : { message });
    event.target.reset();
    info("announce.sent");
  });
});

// Operators (admins) and the operator's own API tokens.
async function refreshAccounts() {
  const admin = me?.role === "admin";
  document.getElementById("operators").hidden = !admin;
  document.getElementById("tokens").hidden = !me || me.bootstrap;
  document.getElementById("create-section").hidden = me?.role === "viewer";
  if (admin) {
    const { operators } = await api("GET", "operators");
    document.getElementById("operator-rows").replaceChildren(...operators.map((op) => {
      const tr = document.createElement("tr");
      tr.dataset.operator = op.name;
      const actions = cell("");
      if (!op.disabled && op.name !== me.name) {
        actions.append(button("ops.disable", "secondary", () => act(() => api("POST", `operators/${encodeURIComponent(op.name)}/disable`))));
      }
      tr.append(cell(op.name), cell(op.role), cell(t(op.disabled ? "ops.disabled" : "ops.active")), actions);
      return tr;
    }));
  }
  await refreshWebhooks();
  if (me && !me.bootstrap) {
    const { tokens } = await api("GET", "tokens");
    document.getElementById("token-rows").replaceChildren(...tokens.map((tok) => {
      const tr = document.createElement("tr");
      tr.dataset.token = tok.id;
      const actions = cell("");
      actions.append(button("tokens.revoke", "secondary", () => act(() => api("DELETE", `tokens/${encodeURIComponent(tok.id)}`))));
      tr.append(cell(tok.label), cell(formatTime(tok.createdAt)), cell(tok.lastUsedAt ? formatTime(tok.lastUsedAt) : "–"), actions);
      return tr;
    }));
  }
}

// Webhooks: every operator sees them; operators and admins register, remove and resend.
let hookShown = null;
async function refreshWebhooks() {
  const section = document.getElementById("webhooks");
  section.hidden = !me;
  if (!me) return;
  const canChange = me.role !== "viewer";
  document.getElementById("hook-form").hidden = !canChange;
  const { webhooks } = await api("GET", "webhooks");
  document.getElementById("hook-rows").replaceChildren(...webhooks.map((hook) => {
    const tr = document.createElement("tr");
    tr.dataset.webhook = hook.webhookId;
    const actions = cell("");
    actions.append(button("hooks.show", "secondary", () => { hookShown = hook.webhookId; act(showDeliveries); }));
    if (canChange) actions.append(button("hooks.remove", "secondary", () => act(() => api("DELETE", `webhooks/${encodeURIComponent(hook.webhookId)}`))));
    tr.append(cell(hook.url), cell(hook.events.join(", ")), cell(formatTime(hook.createdAt)), actions);
    return tr;
  }));
  if (hookShown && !webhooks.some((hook) => hook.webhookId === hookShown)) hookShown = null;
  await showDeliveries();
}

async function showDeliveries() {
  const box = document.getElementById("hook-deliveries");
  box.hidden = !hookShown;
  if (!hookShown) return;
  const { deliveries } = await api("GET", `webhooks/${encodeURIComponent(hookShown)}/deliveries`);
  const canChange = me.role !== "viewer";
  document.getElementById("delivery-rows").replaceChildren(...deliveries.map((d) => {
    const tr = document.createElement("tr");
    tr.dataset.event = d.eventId;
    tr.dataset.delivered = String(Boolean(d.deliveredAt));
    const actions = cell("");
    if (canChange) {
      actions.append(button("hooks.resend", "secondary", () => act(async () => {
        await api("POST", `webhooks/${encodeURIComponent(hookShown)}/deliveries/${encodeURIComponent(d.eventId)}/resend`);
        info("hooks.resent");
      })));
    }
    const status = d.lastStatus ?? d.lastError ?? "–";
    const state = d.deliveredAt ? formatTime(d.deliveredAt) : d.gaveUpAt ? t("hooks.gaveUp") : d.nextAttemptAt ? t("hooks.next", { time: formatTime(d.nextAttemptAt) }) : "–";
    tr.append(cell(`${d.type} ${d.eventId}`), cell(d.examId), cell(String(d.attempts)), cell(String(status)), cell(state), actions);
    return tr;
  }));
}

document.getElementById("hook-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const url = document.getElementById("new-hook-url").value.trim();
  const events = [...document.querySelectorAll('input[name="hook-event"]:checked')].map((box) => box.value);
  act(async () => {
    const made = await api("POST", "webhooks", { url, events });
    event.target.reset();
    const box = document.getElementById("new-hook");
    box.textContent = t("hooks.made", { secret: made.secret });
    box.hidden = false;
  });
});

document.getElementById("operator-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = document.getElementById("new-operator-name").value.trim();
  const password = document.getElementById("new-operator-password").value;
  const role = document.getElementById("new-operator-role").value;
  act(async () => {
    await api("POST", "operators", { name, password, role });
    event.target.reset();
    info("ops.added", { name });
  });
});

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const label = document.getElementById("new-token-label").value.trim();
  act(async () => {
    const made = await api("POST", "tokens", { label });
    event.target.reset();
    const box = document.getElementById("new-token");
    box.textContent = t("tokens.made", { token: made.token });
    box.hidden = false;
  });
});

function logout(message) {
  if (!token && me) fetchJSON("/api/logout", null, { method: "POST" }).catch(() => {});
  token = "";
  me = null;
  selected = null; detail = null;
  sessionStorage.removeItem("exambell:admin-token");
  document.getElementById("console").hidden = true;
  document.getElementById("logout").hidden = true;
  document.getElementById("whoami").hidden = true;
  document.getElementById("new-token").hidden = true;
  document.getElementById("new-hook").hidden = true;
  document.getElementById("login").hidden = false;
  info(null);
  errorBox.textContent = message || "";
}

// Shows the console for `who` (from /api/login or /api/me).
async function enter(who) {
  me = who;
  const whoami = document.getElementById("whoami");
  whoami.textContent = t("admin.whoami", { name: who.name, role: who.role });
  whoami.hidden = false;
  document.getElementById("login").hidden = true;
  document.getElementById("console").hidden = false;
  document.getElementById("logout").hidden = false;
  await refresh();
}

async function loginWithToken(candidate) {
  token = candidate;
  try {
    await api("GET", "exams");
  } catch (error) {
    return logout(error.status === 401 ? t("admin.badToken") : error.message);
  }
  sessionStorage.setItem("exambell:admin-token", token);
  await enter({ name: "admin", role: "admin", bootstrap: true });
}

async function loginWithPassword(name, password) {
  document.getElementById("operator-password").value = "";
  try {
    const who = await fetchJSON("/api/login", null, { method: "POST", body: { name, password } });
    await enter(who);
  } catch (error) {
    logout(error.status === 401 ? t("admin.badLogin") : error.message);
  }
}

installLanguageSwitch(() => { renderList(true); renderDetail(true); if (lastInfo) info(lastInfo.key, lastInfo.vars); });
document.getElementById("password-form").addEventListener("submit", (event) => {
  event.preventDefault();
  loginWithPassword(document.getElementById("operator-name").value.trim(), document.getElementById("operator-password").value);
});
document.getElementById("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  loginWithToken(document.getElementById("token").value.trim());
});
document.getElementById("logout").addEventListener("click", () => logout());
if (token) {
  loginWithToken(token);
} else {
  // A reload keeps the console session: the cookie still names the operator.
  fetchJSON("/api/me", null).then(enter, () => {});
}
setInterval(() => { if (me) refresh(); }, 2000);
