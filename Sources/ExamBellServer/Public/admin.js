// The admin console (관리 서버 UI): every action is a call of the web server's JSON API
// with the admin token, kept in this tab's sessionStorage only.
const errorBox = document.getElementById("error");
let token = sessionStorage.getItem("exambell:admin-token") || "";
let pendingEnd = null;

async function api(method, path, body) {
  const response = await fetch(`/api/${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(data.error ? data.error.message : `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  return td;
}

function button(label, className, onClick) {
  const b = document.createElement("button");
  b.textContent = label;
  b.className = className;
  b.addEventListener("click", onClick);
  return b;
}

async function refresh() {
  try {
    const { exams } = await api("GET", "exams");
    errorBox.textContent = "";
    const rows = exams.map((exam) => {
      const tr = document.createElement("tr");
      tr.dataset.exam = exam.examId;
      tr.append(cell(exam.examId), cell(exam.title), cell(exam.status), cell(String(exam.candidates.total)),
        cell(`${exam.connected.candidates} / ${exam.connected.proctors}`),
        cell(exam.status === "completed" ? `${exam.acknowledged} / ${exam.candidates.total}` : "-"),
        cell(exam.endDatetime ? new Date(exam.endDatetime).toLocaleString() : ""));
      const actions = document.createElement("td");
      if (exam.status === "scheduled") actions.append(button("시작", "secondary", () => act(() => api("POST", `exams/${exam.examId}/start`))));
      if (exam.status === "in_progress") actions.append(button("종료", "danger", () => askEnd(exam)));
      tr.append(actions);
      return tr;
    });
    document.getElementById("exams").replaceChildren(...rows);
    const select = document.getElementById("candidates-exam");
    const chosen = select.value;
    select.replaceChildren(...exams.filter((e) => e.status !== "completed").map((e) => new Option(`${e.examId} – ${e.title}`, e.examId)));
    if (chosen) select.value = chosen;
  } catch (error) {
    if (error.status === 401) return logout("토큰이 올바르지 않습니다.");
    errorBox.textContent = error.message;
  }
}

async function act(action) {
  try {
    await action();
    errorBox.textContent = "";
  } catch (error) {
    errorBox.textContent = error.message;
  }
  await refresh();
}

function askEnd(exam) {
  pendingEnd = exam;
  document.getElementById("end-question").textContent = `${exam.examId} (${exam.title}) 시험을 지금 종료합니까? 모든 수험자의 답안 입력이 즉시 잠깁니다.`;
  document.getElementById("end-reason").value = "";
  document.getElementById("end-dialog").showModal();
}

document.getElementById("end-form").addEventListener("submit", (event) => {
  if (event.submitter && event.submitter.value !== "confirm") { pendingEnd = null; return; }
  const reason = document.getElementById("end-reason").value.trim();
  if (!reason || !pendingEnd) { event.preventDefault(); return; }
  const exam = pendingEnd;
  pendingEnd = null;
  act(() => api("POST", `exams/${exam.examId}/end`, { reason }));
});

document.getElementById("create-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const examId = document.getElementById("new-id").value.trim();
  const title = document.getElementById("new-title").value.trim();
  act(async () => { await api("POST", "exams", { examId, title }); event.target.reset(); });
});

document.getElementById("candidates-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const examId = document.getElementById("candidates-exam").value;
  const candidates = document.getElementById("candidates-text").value.split("\n")
    .map((line) => line.trim()).filter(Boolean)
    .map((line) => { const [candidateId, ...name] = line.split(","); return { candidateId: candidateId.trim(), name: name.join(",").trim() }; });
  act(async () => {
    const result = await api("POST", `exams/${examId}/candidates`, { candidates });
    document.getElementById("candidates-text").value = "";
    errorBox.textContent = `${result.added}명 등록 (${result.existing}명은 이미 등록됨)`;
  });
});

function logout(message) {
  token = "";
  sessionStorage.removeItem("exambell:admin-token");
  document.getElementById("console").hidden = true;
  document.getElementById("logout").hidden = true;
  document.getElementById("login").hidden = false;
  errorBox.textContent = message || "";
}

async function login(candidate) {
  token = candidate;
  try {
    await api("GET", "exams");
  } catch (error) {
    return logout(error.status === 401 ? "토큰이 올바르지 않습니다." : error.message);
  }
  sessionStorage.setItem("exambell:admin-token", token);
  document.getElementById("login").hidden = true;
  document.getElementById("console").hidden = false;
  document.getElementById("logout").hidden = false;
  await refresh();
}

document.getElementById("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  login(document.getElementById("token").value.trim());
});
document.getElementById("logout").addEventListener("click", () => logout());
if (token) login(token);
setInterval(() => { if (token) refresh(); }, 2000);
