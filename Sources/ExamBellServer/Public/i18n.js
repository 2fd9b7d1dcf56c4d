// Korean by default, English on request: every text of the pages comes from here.
// Static text is marked in the HTML (data-i18n, data-i18n-placeholder, data-i18n-aria-label);
// scripts call t(). The choice is kept in localStorage and applies to every page.
const messages = {
  ko: {
    "lang.switch": "English",
    "time.days": "{n}일",
    "common.connecting": "연결 중…",
    "common.connected": "연결됨",
    "common.reconnecting": "연결 끊김 – 재연결 중",
    "common.sessionError": "세션을 열 수 없습니다: {message}",
    "common.loading": "불러오는 중…",
    "status.scheduled": "예정",
    "status.in_progress": "진행 중",
    "status.registered": "등록",
    "status.completed": "종료",
    "end.notice": "시험이 종료되었습니다.",
    "end.time": "종료 시각: {time}",
    "candidate.pageTitle": "ExamBell 수험자",
    "candidate.sheet": "답안지",
    "candidate.clock": "현재 시각",
    "candidate.remaining": "남은 시간",
    "candidate.noScheduledEnd": "종료 시각 미정",
    "candidate.overdue": "예정 종료 시각 경과",
    "candidate.item": "{n}번",
    "candidate.shortItem": "{n}번 (단답형)",
    "candidate.choice": "{n}",
    "candidate.notStarted": "시험이 아직 시작되지 않았습니다. 시작되면 답안을 입력할 수 있습니다.",
    "candidate.saved": "저장됨 {time}",
    "candidate.saving": "저장 중…",
    "candidate.unsaved": "저장 대기 중",
    "candidate.saveFailed": "저장 실패 – 다시 시도합니다 ({message})",
    "candidate.saveRefused": "종료 후 저장이 거부되었습니다: {message}",
    "candidate.locked": "더 이상 답안을 수정할 수 없습니다. 제출된 답안은 그대로 보관됩니다.",
    "candidate.answered": "{answered} / {total} 문항 응답",
    "candidate.review": "답안 보기",
    "proctor.pageTitle": "ExamBell 감독관",
    "proctor.roster": "수험자 현황",
    "proctor.col.id": "수험번호",
    "proctor.col.name": "이름",
    "proctor.col.status": "상태",
    "proctor.col.connection": "연결",
    "proctor.col.lastActive": "최근 활동",
    "proctor.col.answered": "응답 문항",
    "proctor.col.ack": "종료 확인",
    "proctor.online": "연결",
    "proctor.offline": "끊김",
    "proctor.acked": "확인",
    "proctor.notAcked": "미확인",
    "proctor.count.total": "수험자",
    "proctor.count.connected": "연결",
    "proctor.count.completed": "종료",
    "proctor.count.acknowledged": "종료 확인",
    "proctor.count.proctors": "감독관 연결",
    "proctor.pending": "종료 미확인 수험자",
    "proctor.pendingNone": "모든 수험자가 종료를 확인했습니다.",
    "proctor.ended": "시험이 종료되었습니다. ({time})",
    "admin.pageTitle": "ExamBell 관리",
    "admin.heading": "ExamBell 관리 서버",
    "admin.logout": "로그아웃",
    "admin.login": "로그인",
    "admin.token": "관리자 토큰",
    "admin.badToken": "토큰이 올바르지 않습니다.",
    "admin.exams": "시험 목록",
    "admin.noExams": "아직 시험이 없습니다. 아래에서 만드세요.",
    "admin.col.id": "시험 ID",
    "admin.col.title": "제목",
    "admin.col.status": "상태",
    "admin.col.candidates": "수험자",
    "admin.col.connected": "연결 (수험자/감독관)",
    "admin.col.ack": "종료 확인",
    "admin.col.end": "종료 시각",
    "admin.open": "열기",
    "admin.start": "시작",
    "admin.end": "종료",
    "admin.create": "시험 만들기",
    "admin.create.id": "시험 ID (예: e123)",
    "admin.create.title": "제목",
    "admin.create.choice": "객관식 문항 수",
    "admin.create.short": "단답형 문항 수",
    "admin.create.scheduledEnd": "예정 종료 시각 (선택)",
    "admin.create.submit": "만들기",
    "admin.created": "시험 {examId}을(를) 만들었습니다.",
    "admin.detail": "시험 {examId} – {title}",
    "admin.detail.status": "상태: {status}",
    "admin.detail.items": "문항: 객관식 {choice}, 단답형 {short}",
    "admin.detail.scheduledEnd": "예정 종료: {time}",
    "admin.detail.endedBy": "종료: {time}, {actor}, 사유: {reason}",
    "admin.register": "수험자 등록",
    "admin.register.hint": "한 줄에 한 명: 수험번호,이름 (붙여넣기 또는 CSV 파일)",
    "admin.register.file": "CSV 파일",
    "admin.register.submit": "수험자 등록",
    "admin.registerProctors": "감독관 등록",
    "admin.registerProctors.hint": "한 줄에 한 명: 감독관ID,이름",
    "admin.registerProctors.submit": "감독관 등록",
    "admin.registered": "{added}명 등록 ({existing}명은 이미 등록됨)",
    "admin.csvEmpty": "등록할 줄이 없습니다.",
    "admin.csvBadLine": "{line}번째 줄은 '아이디,이름' 형식이 아닙니다.",
    "admin.delivery": "종료 전달 현황",
    "admin.delivery.progress": "종료 확인 {acknowledged} / {total}",
    "admin.delivery.pending": "아직 확인하지 않은 수험자",
    "admin.delivery.none": "모든 수험자가 확인했습니다.",
    "admin.links": "접속 링크",
    "admin.links.make": "접속 링크 만들기",
    "admin.links.hint": "각 링크는 한 사람만의 것입니다. 본인에게만 전달하세요.",
    "admin.audit": "감사 로그",
    "admin.audit.at": "시각",
    "admin.audit.actor": "누가",
    "admin.audit.action": "무엇을",
    "admin.audit.detail": "내용",
    "admin.endDialog": "시험 종료",
    "admin.endQuestion": "{examId} ({title}) 시험을 지금 종료합니까? 모든 수험자의 답안 입력이 즉시 잠깁니다.",
    "admin.endReason": "사유 (필수)",
    "admin.cancel": "취소",
    "admin.endNow": "지금 종료",
    "admin.ended": "시험 {examId}을(를) 종료했습니다 ({time}).",
    "admin.alreadyEnded": "시험 {examId}은(는) 이미 {time}에 종료되었습니다.",
  },
  en: {
    "lang.switch": "한국어",
    "time.days": "{n} d",
    "common.connecting": "Connecting…",
    "common.connected": "Connected",
    "common.reconnecting": "Disconnected – reconnecting",
    "common.sessionError": "Cannot open the session: {message}",
    "common.loading": "Loading…",
    "status.scheduled": "Scheduled",
    "status.in_progress": "In progress",
    "status.registered": "Registered",
    "status.completed": "Ended",
    "end.notice": "The exam has ended.",
    "end.time": "Ended at {time}",
    "candidate.pageTitle": "ExamBell candidate",
    "candidate.sheet": "Answer sheet",
    "candidate.clock": "Time",
    "candidate.remaining": "Remaining",
    "candidate.noScheduledEnd": "No planned end time",
    "candidate.overdue": "Past the planned end",
    "candidate.item": "Question {n}",
    "candidate.shortItem": "Question {n} (short answer)",
    "candidate.choice": "{n}",
    "candidate.notStarted": "The exam has not started yet. You can answer once it starts.",
    "candidate.saved": "Saved {time}",
    "candidate.saving": "Saving…",
    "candidate.unsaved": "Waiting to save",
    "candidate.saveFailed": "Save failed – retrying ({message})",
    "candidate.saveRefused": "Save refused after the end: {message}",
    "candidate.locked": "Answers can no longer be changed. Your saved answers are kept.",
    "candidate.answered": "{answered} of {total} answered",
    "candidate.review": "Review answers",
    "proctor.pageTitle": "ExamBell proctor",
    "proctor.roster": "Candidates",
    "proctor.col.id": "ID",
    "proctor.col.name": "Name",
    "proctor.col.status": "Status",
    "proctor.col.connection": "Connection",
    "proctor.col.lastActive": "Last active",
    "proctor.col.answered": "Answered",
    "proctor.col.ack": "End acknowledged",
    "proctor.online": "Online",
    "proctor.offline": "Offline",
    "proctor.acked": "Yes",
    "proctor.notAcked": "Not yet",
    "proctor.count.total": "Candidates",
    "proctor.count.connected": "Online",
    "proctor.count.completed": "Ended",
    "proctor.count.acknowledged": "Acknowledged",
    "proctor.count.proctors": "Proctors online",
    "proctor.pending": "Not yet acknowledged",
    "proctor.pendingNone": "Every candidate has acknowledged the end.",
    "proctor.ended": "The exam has ended. ({time})",
    "admin.pageTitle": "ExamBell admin",
    "admin.heading": "ExamBell admin console",
    "admin.logout": "Log out",
    "admin.login": "Log in",
    "admin.token": "Admin token",
    "admin.badToken": "The token is not valid.",
    "admin.exams": "Exams",
    "admin.noExams": "No exams yet. Create one below.",
    "admin.col.id": "Exam ID",
    "admin.col.title": "Title",
    "admin.col.status": "Status",
    "admin.col.candidates": "Candidates",
    "admin.col.connected": "Online (candidates/proctors)",
    "admin.col.ack": "Acknowledged",
    "admin.col.end": "Ended at",
    "admin.open": "Open",
    "admin.start": "Start",
    "admin.end": "End",
    "admin.create": "Create an exam",
    "admin.create.id": "Exam ID (e.g. e123)",
    "admin.create.title": "Title",
    "admin.create.choice": "Multiple-choice items",
    "admin.create.short": "Short-answer items",
    "admin.create.scheduledEnd": "Planned end (optional)",
    "admin.create.submit": "Create",
    "admin.created": "Exam {examId} created.",
    "admin.detail": "Exam {examId} – {title}",
    "admin.detail.status": "Status: {status}",
    "admin.detail.items": "Items: {choice} multiple choice, {short} short answer",
    "admin.detail.scheduledEnd": "Planned end: {time}",
    "admin.detail.endedBy": "Ended {time} by {actor}, reason: {reason}",
    "admin.register": "Register candidates",
    "admin.register.hint": "One per line: candidate id,name (paste or a CSV file)",
    "admin.register.file": "CSV file",
    "admin.register.submit": "Register candidates",
    "admin.registerProctors": "Register proctors",
    "admin.registerProctors.hint": "One per line: proctor id,name",
    "admin.registerProctors.submit": "Register proctors",
    "admin.registered": "{added} registered ({existing} already registered)",
    "admin.csvEmpty": "There are no lines to register.",
    "admin.csvBadLine": "Line {line} is not 'id,name'.",
    "admin.delivery": "End delivery",
    "admin.delivery.progress": "Acknowledged {acknowledged} of {total}",
    "admin.delivery.pending": "Not yet acknowledged",
    "admin.delivery.none": "Every candidate has acknowledged.",
    "admin.links": "Page links",
    "admin.links.make": "Make page links",
    "admin.links.hint": "Each link belongs to one person. Give it to that person only.",
    "admin.audit": "Audit log",
    "admin.audit.at": "When",
    "admin.audit.actor": "Who",
    "admin.audit.action": "What",
    "admin.audit.detail": "Detail",
    "admin.endDialog": "End the exam",
    "admin.endQuestion": "End {examId} ({title}) now? Every candidate's answer sheet locks at once.",
    "admin.endReason": "Reason (required)",
    "admin.cancel": "Cancel",
    "admin.endNow": "End now",
    "admin.ended": "Exam {examId} ended ({time}).",
    "admin.alreadyEnded": "Exam {examId} had already ended at {time}.",
  },
};

const STORAGE_KEY = "exambell:lang";

export function lang() {
  const chosen = new URLSearchParams(location.search).get("lang") || localStorage.getItem(STORAGE_KEY);
  return chosen === "en" ? "en" : "ko";
}

// The text of `key` in the current language, with {name} replaced from `vars`.
export function t(key, vars = {}) {
  const text = messages[lang()][key] ?? messages.ko[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (vars[name] ?? `{${name}}`));
}

// Fills the marked elements under `root` in the current language.
export function applyI18n(root = document) {
  document.documentElement.lang = lang();
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll("[data-i18n-aria-label]")) el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel));
  const title = document.querySelector("title[data-i18n]");
  if (title) document.title = t(title.dataset.i18n);
}

// Wires the page's #lang button; `onChange` redraws what scripts wrote.
export function installLanguageSwitch(onChange = () => {}) {
  const button = document.getElementById("lang");
  applyI18n();
  if (!button) return;
  button.addEventListener("click", () => {
    localStorage.setItem(STORAGE_KEY, lang() === "ko" ? "en" : "ko");
    const url = new URL(location.href);
    if (url.searchParams.has("lang")) { url.searchParams.delete("lang"); history.replaceState(null, "", url); }
    applyI18n();
    onChange();
  });
}

// A time for people, in the browser's zone and the page's language.
export function formatTime(iso) {
  return iso ? new Date(iso).toLocaleString(lang() === "en" ? "en-GB" : "ko-KR") : "";
}

// HH:MM:SS of a time in milliseconds, in the browser's zone.
export function formatClock(ms) {
  const d = new Date(ms);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}

// A duration in seconds as [N days] H:MM:SS.
export function formatDuration(seconds) {
  const days = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  const clock = `${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
  return days > 0 ? `${t("time.days", { n: days })} ${clock}` : clock;
}
