// Types of ExamBell's browser SDK (`/sdk/exambell.js`), written by hand.

/** Options of `connect`. */
export interface ConnectOptions {
  /** The page's session token: a candidate's or a proctor's (`POST /api/exams/{examId}/sessions`). */
  token: string;
  /** Where ExamBell is; by default the origin the SDK was loaded from. */
  baseUrl?: string;
  /** The socket's URL; by default the one the session names. */
  socketUrl?: string;
}

/** An end: the exam's, or (for a candidate) its own. Fires once per end. */
export interface EndedEvent {
  examId: string;
  /** Set on a candidate's page. */
  candidateId?: string;
  /** UTC, ISO 8601: the end time the server recorded (or, for `local`, the planned end). */
  endDatetime: string;
  reason?: string;
  /** True when the page ended at its planned end by the server's clock before the server said
   * so (connected or not); the server's end then confirms it (`confirmed`), or the page is
   * `resumed` when its time was moved. */
  local?: boolean;
}

export interface TimeEvent {
  examId: string;
  /** The page's new planned end, UTC ISO 8601. */
  scheduledEndDatetime: string;
}

export interface AnnouncementEvent {
  examId: string;
  announcementId: string;
  message: string;
  timestamp: string;
}

export interface ConnectionEvent {
  state: "open" | "reconnecting" | "closed";
  /** `session_closed` when the exam's sessions have closed and nothing more will come. */
  reason?: string;
}

/** After a lock at the planned end, the server says the exam still runs for this page. */
export interface ResumedEvent {
  examId: string;
  scheduledEndDatetime: string | null;
}

export interface SessionInfo {
  id: string;
  role: "candidate" | "proctor";
  examId: string;
  title: string;
  name: string;
  status: "scheduled" | "in_progress" | "completed";
  scheduledEndDatetime: string | null;
  endDatetime: string | null;
  socketUrl: string;
  [field: string]: unknown;
}

export interface EventMap {
  ended: EndedEvent;
  time: TimeEvent;
  announcement: AnnouncementEvent;
  connection: ConnectionEvent;
  resumed: ResumedEvent;
  /** The server's end confirmed a lock at the planned end. */
  confirmed: { examId: string; endDatetime: string };
  sessionClosed: { examId: string };
  /** Any other socket message (the proctor's live roster). */
  message: { type: string; examId: string; [field: string]: unknown };
}

/** What a receipt states (DESIGN, "Proof"); signed with Ed25519 over its canonical JSON. */
export interface Receipt {
  examId: string;
  candidateId: string;
  endDatetime: string;
  /** "exam", "own_time", "operator" or "hand_in". */
  endedBy: string;
  /** Hex SHA-256 of the canonical JSON of the answers as stored. */
  answersSha256: string;
  answeredCount: number;
  lastSavedAt: string | null;
  issuedAt: string;
}

/** A receipt file: check it with `exambell verify FILE --keys …/api/receipt-keys`. */
export interface SignedReceipt {
  receipt: Receipt;
  keyId: string;
  /** base64url Ed25519 signature. */
  signature: string;
  /** Not signed: lets a check name the field that was changed. */
  fieldDigests: Record<string, string>;
  /** A short form for people to compare (e.g. "3f2a-91c0-77de"). */
  fingerprint: string;
}

export interface Bell {
  /** Subscribes; returns a function that unsubscribes. A late subscriber is given at once the end (when the page already ended), every announcement so far, and the connection's state (once it left "connecting"). */
  on<K extends keyof EventMap>(event: K, handler: (event: EventMap[K]) => void): () => void;
  /** Milliseconds since the epoch on the server's clock. */
  serverNow(): number;
  /** This page's planned end (UTC ISO 8601), or null. */
  scheduledEnd(): string | null;
  /** The page disabled every control: the end's `locked` step (with the clock's offset and round trip). */
  reportLocked(): void;
  /** The person saw this announcement. */
  announcementSeen(announcementId: string): void;
  /** A candidate's signed receipt once its end's grace window has passed; rejects with code `receipt_not_ready` before. */
  receipt(): Promise<SignedReceipt>;
  /** The session as the server last described it. */
  readonly info: SessionInfo | null;
  /** The clock estimate: the device's offset from the server, and the sample's round trip. */
  readonly clockEstimate: { offsetMs: number; rttMs: number | null };
  close(): void;
}

export class ExamBellError extends Error {
  status: number;
  code: string;
}

/** Connects a page to ExamBell; rejects with an ExamBellError when the token is refused. */
export function connect(options: ConnectOptions): Promise<Bell>;
