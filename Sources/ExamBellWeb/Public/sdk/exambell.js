// ExamBell's browser SDK: everything an exam page needs to take part in an end, for ExamBell's
// own pages and any platform's. One dependency-free ES module, no build step (types:
// exambell.d.ts beside it).
//
//   import { connect } from "https://exam.example/sdk/exambell.js";
//   const bell = await connect({ token });
//   bell.on("ended", (e) => lockThePage(e.endDatetime));
//
// It owns the socket (a ticket per connection, reconnects with jitter, a node's 1012 drain),
// the late joiner's state, every acknowledgement the server counts (told, locked, a new time,
// an announcement seen), the server's clock (NTP-style: of several samples, the one with the
// shortest round trip), and the lock at the planned end: a candidate page ends at its planned
// end by the server's clock (`local: true`), online or not, without waiting for the server's
// word; the server's end then confirms it (no second event), and a page the server says still
// runs (its time was moved) gets "resumed". "ended" fires once per end, however many times the
// end is told.

const SAMPLES_AT_CONNECT = 4;
const SAMPLES_AT_RECONNECT = 2;
const HANDSHAKE_LIMIT_MS = 10000;
const MAX_BACKOFF_MS = 30000;
// After a lock at the planned end, how long the server has to confirm it before the page asks.
const CONFIRM_AFTER_MS = 5000;

class ExamBellError extends Error {
  constructor(message, status, code) {
    super(message);
    this.name = "ExamBellError";
    this.status = status;
    this.code = code;
  }
}

// The module's own origin: where the SDK was loaded from is where ExamBell is.
function moduleOrigin() {
  try { return new URL(import.meta.url).origin; } catch { return location.origin; }
}

async function call(baseUrl, path, token, { method = "GET", body, keepalive = false } = {}) {
  const response = await fetch(new URL(path, baseUrl), {
    method,
    keepalive,
    credentials: "omit",
    headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new ExamBellError(data.error ? data.error.message : `HTTP ${response.status}`, response.status, data.error ? data.error.code : "");
  }
  return data;
}

// Connects a page to ExamBell with its session token (a candidate's or a proctor's).
// Resolves once the session is known (the socket opens beside it); rejects with an
// ExamBellError (`status`, `code`) when the token is refused.
export async function connect({ token, baseUrl = moduleOrigin(), socketUrl } = {}) {
  if (!token) throw new ExamBellError("connect needs the page's session token", 0, "token_required");
  const bell = new Bell(token, String(baseUrl).replace(/\/$/, ""), socketUrl);
  await bell.start();
  return bell;
}

class Bell {
  constructor(token, baseUrl, socketUrl) {
    this.token = token;
    this.baseUrl = baseUrl;
    this.socketUrlOverride = socketUrl;
    this.handlers = new Map();
    this.session = null;
    this.clock = { offsetMs: 0, rttMs: null };
    this.socket = null;
    this.state = "connecting";
    this.stopped = false;
    this.attempt = 0;
    this.retry = null;
    this.opened = false;
    // Ends told already (`ended` fires once per end): the exam's, and for a candidate its own.
    this.endsTold = new Set();
    this.endedAt = null; // this page's end, once it ended (the server's, or the planned end's)
    this.lockedLocal = false; // ended at its planned end; the server has not confirmed it yet
    this.announcements = new Map(); // every announcement told so far, by id, in order
    this.onOffline = () => { if (this.socket) this.socket.close(); };
    this.onOnline = () => {
      if (!this.stopped && (!this.socket || this.socket.readyState === WebSocket.CLOSED)) {
        this.attempt = 0;
        clearTimeout(this.retry);
        this.open();
      }
    };
  }

  // MARK: the page's API

  on(event, handler) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event).add(handler);
    // A page that subscribes late still learns the end, every announcement so far, and the
    // connection's state now (the socket may have opened while the page was busy).
    if (event === "ended" && this.endedAt) handler(this.lastEnded);
    if (event === "connection" && this.state !== "connecting") handler({ state: this.state });
    if (event === "announcement") for (const notice of this.announcements.values()) handler(notice);
    return () => this.handlers.get(event).delete(handler);
  }

  serverNow() { return Date.now() + this.clock.offsetMs; }

  scheduledEnd() { return this.session ? this.session.scheduledEndDatetime || null : null; }

  // The session as the server last described it (id, role, examId, status, title, name…).
  get info() { return this.session ? { ...this.session } : null; }

  // The estimate of the server's clock: its offset from the device's, and the round trip of
  // the sample it came from.
  get clockEstimate() { return { ...this.clock }; }

  // The page disabled every control: recorded as the `locked` step of the end.
  // Sent once the server has told this connection the end (at once when it has; a page that
  // locked at its planned end, or while away, when the server's end arrives).
  reportLocked() {
    this.lockedPage = true;
    this.lockPending = true;
    this.sendLocked();
  }

  sendLocked() {
    if (!this.lockPending || !this.toldEnd || !this.socket || this.socket.readyState !== WebSocket.OPEN) return;
    this.lockPending = false;
    this.send({ type: "locked", examId: this.session.examId, clockOffsetMs: Math.round(this.clock.offsetMs), rttMs: this.clock.rttMs });
  }

  // The page showed an announcement to the person (the proctor's roster counts who saw it).
  announcementSeen(announcementId) {
    this.send({ type: "ack", examId: this.session.examId, of: "announcement", announcementId });
  }

  close() {
    this.stopped = true;
    clearTimeout(this.retry);
    clearInterval(this.ticker);
    clearTimeout(this.confirmTimer);
    window.removeEventListener("offline", this.onOffline);
    window.removeEventListener("online", this.onOnline);
    if (this.socket) this.socket.close(1000);
    this.setState("closed");
  }

  // MARK: start, clock and resync

  async start() {
    await this.refresh(SAMPLES_AT_CONNECT);
    if (this.isCandidate()) await this.fetchAnnouncements();
    window.addEventListener("offline", this.onOffline);
    window.addEventListener("online", this.onOnline);
    this.ticker = setInterval(() => this.checkPlannedEnd(), 250);
    this.open();
  }

  // Asks the server for the session, then its clock (`/api/clock`, no DB) until there are
  // `samples` readings, and keeps the reading with the shortest round trip (NTP-style: the
  // shorter the trip, the less the answer's moment is in doubt); then applies what the session
  // says (a new time, an end).
  async refresh(samples) {
    let best = null;
    let session = null;
    for (let i = 0; i < samples; i++) {
      const sent = Date.now();
      const answer = await call(this.baseUrl, i === 0 ? "/api/session" : "/api/clock", this.token);
      const received = Date.now();
      if (i === 0) session = answer;
      const rtt = received - sent;
      if (!best || rtt < best.rttMs) best = { rttMs: rtt, offsetMs: answer.serverTimeMs - (sent + received) / 2 };
    }
    this.clock = best;
    this.applySession(session);
  }

  applySession(fresh) {
    const before = this.session;
    this.session = fresh;
    if (before && fresh.scheduledEndDatetime && fresh.scheduledEndDatetime !== before.scheduledEndDatetime) {
      this.emit("time", { examId: fresh.examId, scheduledEndDatetime: fresh.scheduledEndDatetime });
    }
    if (fresh.status === "completed" && fresh.endDatetime) {
      this.ended({ examId: fresh.examId, endDatetime: fresh.endDatetime, candidateId: this.isCandidate() ? fresh.id : undefined });
    } else if (this.lockedLocal && fresh.status === "in_progress" && !this.isDue(fresh.scheduledEndDatetime)) {
      this.resume();
    }
  }

  isDue(end) { return Boolean(end) && this.serverNow() >= Date.parse(end); }

  // The page locked at its planned end, and the server says the exam still runs for it (the
  // time was moved at the last moment, or while the page was away): it opens again.
  resume() {
    this.lockedLocal = false;
    this.endedAt = null;
    this.endsTold.delete(this.localKey);
    clearTimeout(this.confirmTimer);
    this.emit("resumed", { examId: this.session.examId, scheduledEndDatetime: this.session.scheduledEndDatetime || null });
  }

  // After a lock at the planned end the server has not confirmed: ask it (while connected;
  // a page that is away asks when it is back).
  async confirm() {
    if (!this.lockedLocal || this.stopped) return;
    if (this.state === "open") {
      try { await this.refresh(1); } catch { /* asked again below */ }
    }
    if (this.lockedLocal) this.confirmTimer = setTimeout(() => this.confirm(), CONFIRM_AFTER_MS);
  }

  isCandidate() { return this.session && this.session.role === "candidate"; }

  async resync() {
    try {
      await this.refresh(SAMPLES_AT_RECONNECT);
    } catch {
      return; // still away: the next reconnect asks again
    }
    if (this.isCandidate()) await this.fetchAnnouncements();
  }

  // A candidate page ends at its planned end by the server's clock, connected or not (a page
  // that is away keeps its answers until it is back); the server's end confirms it.
  checkPlannedEnd() {
    if (!this.isCandidate() || this.endedAt || this.session.status !== "in_progress") return;
    const end = this.session.scheduledEndDatetime;
    if (!this.isDue(end)) return;
    this.lockedLocal = true;
    this.localKey = `planned:${end}`;
    this.ended({ examId: this.session.examId, endDatetime: end, candidateId: this.session.id, local: true }, this.localKey);
    this.confirmTimer = setTimeout(() => this.confirm(), CONFIRM_AFTER_MS);
  }

  // MARK: events

  emit(event, value) {
    for (const handler of this.handlers.get(event) || []) {
      try { handler(value); } catch (error) { setTimeout(() => { throw error; }); }
    }
  }

  ended(event, key = `end:${event.examId}`) {
    if (this.endedAt && !this.lockedLocal) return; // once per end
    if (this.endedAt && this.lockedLocal) {
      // Locked at its planned end, now told by the server: the same end, with the server's time.
      this.lockedLocal = false;
      clearTimeout(this.confirmTimer);
      this.endedAt = event.endDatetime;
      this.session.status = "completed";
      this.session.endDatetime = event.endDatetime;
      this.emit("confirmed", { examId: event.examId, endDatetime: event.endDatetime });
      return;
    }
    if (this.endsTold.has(key)) return;
    this.endsTold.add(key);
    this.endedAt = event.endDatetime;
    if (!event.local) {
      this.session.status = "completed";
      this.session.endDatetime = event.endDatetime;
    }
    this.lastEnded = event;
    this.emit("ended", event);
  }

  announced(message) {
    if (this.announcements.has(message.announcementId)) return;
    const notice = {
      examId: message.examId || this.session.examId, announcementId: message.announcementId, message: message.message, timestamp: message.timestamp,
    };
    this.announcements.set(notice.announcementId, notice);
    this.emit("announcement", notice);
  }

  // The candidate's signed receipt once its end's grace window has passed (DESIGN, "Proof"):
  // `{receipt, keyId, signature, fieldDigests, fingerprint}`, a file anyone can check with
  // `exambell verify`. Rejects with code `receipt_not_ready` before.
  async receipt() {
    return call(this.baseUrl, "/api/receipt", this.token);
  }

  // The announcements made so far (the latest few the server gives, DESIGN's budget).
  async fetchAnnouncements() {
    try {
      const { announcements } = await call(this.baseUrl, "/api/announcements", this.token);
      for (const announcement of announcements) this.announced(announcement);
    } catch {
      // not this page's (a proctor's), or away: the next reconnect asks again
    }
  }

  received(message) {
    if (message.examId !== this.session.examId) return;
    // Candidates' pages acknowledge what they were told (DESIGN); proctors' do not.
    const candidate = this.isCandidate();
    if (message.type === "exam_end") {
      if (candidate) this.send({ type: "ack", examId: message.examId });
      this.toldEnd = true;
      // A lock reported before the server's end counts once it is told; a page told again on
      // a new connection (its node restarted and may have lost the receipt) reports it again.
      if (this.lockedPage) this.lockPending = true;
      this.sendLocked();
      this.ended({ examId: message.examId, endDatetime: message.timestamp, candidateId: this.isCandidate() ? this.session.id : undefined });
    } else if (message.type === "exam_time") {
      if (candidate) this.send({ type: "ack", examId: message.examId, of: "exam_time" });
      if (message.scheduledEndDatetime !== this.session.scheduledEndDatetime) {
        this.session.scheduledEndDatetime = message.scheduledEndDatetime;
        this.emit("time", { examId: message.examId, scheduledEndDatetime: message.scheduledEndDatetime });
        if (this.lockedLocal && !this.isDue(message.scheduledEndDatetime)) this.resume();
      }
    } else if (message.type === "announcement") {
      this.announced(message);
    } else {
      this.emit("message", message); // e.g. the proctor's roster
    }
  }

  setState(state, reason) {
    this.state = state;
    this.emit("connection", reason ? { state, reason } : { state });
  }

  // MARK: the socket

  send(value) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(value));
  }

  async open() {
    if (this.stopped) return;
    if (!navigator.onLine) { this.setState("reconnecting"); return; }
    // The socket's URL carries a 30-second ticket, not the session token: proxies and load
    // balancers log URLs. A web node that cannot give one now leaves the token to open it.
    let credential = `token=${encodeURIComponent(this.token)}`;
    try {
      const { ticket } = await call(this.baseUrl, "/api/socket-ticket", this.token, { method: "POST" });
      credential = `ticket=${encodeURIComponent(ticket)}`;
    } catch (error) {
      if (error.code === "session_closed") {
        // The exam's sessions have closed: nothing more will come; stop asking.
        this.stopped = true;
        clearInterval(this.ticker);
        clearTimeout(this.confirmTimer);
        this.emit("sessionClosed", { examId: this.session.examId });
        this.setState("closed", "session_closed");
        return;
      }
    }
    if (this.stopped) return;
    const base = this.socketUrlOverride || this.session.socketUrl;
    const current = new WebSocket(`${base}${base.includes("?") ? "&" : "?"}${credential}`);
    this.socket = current;
    this.toldEnd = false; // the server tells each connection the end (a late joiner at once)
    // A handshake the node never answers (its accept queue overflowed in a reconnect storm)
    // is given up; the close that follows retries with backoff.
    const handshake = setTimeout(() => { if (current.readyState === WebSocket.CONNECTING) current.close(); }, HANDSHAKE_LIMIT_MS);
    current.addEventListener("open", () => {
      clearTimeout(handshake);
      this.attempt = 0;
      this.setState("open");
      if (this.opened) this.resync();
      this.opened = true;
    });
    current.addEventListener("message", (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch { return; }
      this.received(message);
    });
    current.addEventListener("close", (event) => {
      clearTimeout(handshake);
      if (this.socket !== current) return;
      if (this.stopped) return;
      this.setState("reconnecting");
      // A node shutting down (1012 service restart, 1001 going away): back within a second,
      // spread at random so that a whole node's pages do not return in the same instant.
      if ((event.code === 1012 || event.code === 1001) && this.attempt === 0) {
        this.attempt = 1;
        this.retry = setTimeout(() => this.open(), 1000 * Math.random());
        return;
      }
      // 0.5 s, 1 s, 2 s … up to 30 s, each spread by ±50 %.
      const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempt);
      this.attempt += 1;
      this.retry = setTimeout(() => this.open(), delay * (0.5 + Math.random()));
    });
  }
}

export { ExamBellError };
