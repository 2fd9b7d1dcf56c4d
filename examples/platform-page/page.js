// The platform's exam page, on ExamBell's browser SDK only: where ExamBell is and the
// candidate's session token come in the URL's fragment (#bell=…&token=…).
const params = new URLSearchParams(location.hash.slice(1));
const bellUrl = params.get("bell");
const token = params.get("token");
const body = document.body;

function pad(n) { return String(n).padStart(2, "0"); }
function clock(ms) { const d = new Date(ms); return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`; }

async function main() {
  const { connect } = await import(`${bellUrl}/sdk/exambell.js`);
  let bell;
  try {
    bell = await connect({ token, baseUrl: bellUrl });
  } catch (error) {
    document.getElementById("error").textContent = `ExamBell refused the session: ${error.message} (${error.code})`;
    body.dataset.error = error.code || "error";
    return;
  }
  window.bell = bell; // for the tests' eyes
  const info = bell.info;
  document.getElementById("exam-title").textContent = info.title;
  body.dataset.endedCount = "0";

  const showEnd = () => { document.getElementById("planned-end").textContent = bell.scheduledEnd() ? clock(Date.parse(bell.scheduledEnd())) : "—"; };
  showEnd();
  setInterval(() => {
    const now = bell.serverNow();
    document.getElementById("clock").textContent = clock(now);
    const end = bell.scheduledEnd();
    document.getElementById("left").textContent = end ? `${Math.max(0, Math.round((Date.parse(end) - now) / 1000))} s` : "—";
  }, 200);

  bell.on("connection", ({ state, reason }) => {
    const badge = document.getElementById("connection");
    badge.dataset.state = state;
    badge.textContent = reason === "session_closed" ? "session closed" : state;
    body.dataset.connection = state;
  });
  bell.on("sessionClosed", () => { body.dataset.sessionClosed = "true"; });
  bell.on("time", () => { showEnd(); body.dataset.plannedEnd = bell.scheduledEnd(); });
  bell.on("announcement", (notice) => {
    const box = document.createElement("div");
    box.className = "notice";
    box.dataset.announcement = notice.announcementId;
    box.textContent = notice.message;
    box.addEventListener("click", () => { bell.announcementSeen(notice.announcementId); box.remove(); });
    document.getElementById("announcements").append(box);
  });
  bell.on("ended", (end) => {
    for (const input of document.querySelectorAll("#questions input")) input.disabled = true;
    bell.reportLocked();
    document.getElementById("ended").hidden = false;
    document.getElementById("ended-at").textContent = `Ended at ${clock(Date.parse(end.endDatetime))}.`;
    body.dataset.ended = "true";
    body.dataset.endedCount = String(Number(body.dataset.endedCount) + 1);
    body.dataset.endedLocally = String(Boolean(end.local));
    body.dataset.lockedAtServerMs = String(Math.round(bell.serverNow()));
  });
  bell.on("resumed", () => {
    for (const input of document.querySelectorAll("#questions input")) input.disabled = false;
    document.getElementById("ended").hidden = true;
    delete body.dataset.ended;
  });
  body.dataset.ready = "true";
}

main();
