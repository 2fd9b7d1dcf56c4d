// What the candidate and proctor pages share: the WebSocket with reconnects, the session
// token, JSON calls, the server's clock, the connection indicator.
import { t } from "/static/i18n.js";

// Connects with a socket ticket for the session token and reconnects with exponential
// backoff and jitter.
// A node that shuts down closes with 1012 (service restart) or 1001 (going away): then the
// page reconnects within a second, spread at random so that a whole node's browsers do not
// return in the same instant; the load balancer sends them to another node.
export function connectSocket({ socketUrl, token, onMessage, onState }) {
  let attempt = 0;
  let socket = null;
  let stopped = false;
  let retry = null;

  // While the device says it is offline the connection counts as down (a WebSocket may not
  // notice for minutes); it opens again the moment the device is back.
  window.addEventListener("offline", () => { if (socket) socket.close(); });
  window.addEventListener("online", () => {
    if (!stopped && (!socket || socket.readyState === WebSocket.CLOSED)) { attempt = 0; clearTimeout(retry); open(); }
  });

  async function open() {
    if (stopped) return;
    if (!navigator.onLine) { onState("closed"); return; }
    onState("connecting");
    // The socket's URL carries a 30-second ticket, not the session token: proxies and load
    // balancers log URLs. A web node that cannot give one now leaves the token to open it.
    let credential = `token=${encodeURIComponent(token)}`;
    try {
      const { ticket } = await fetchJSON("/api/socket-ticket", token, { method: "POST" });
      credential = `ticket=${encodeURIComponent(ticket)}`;
    } catch (error) {
      // The exam's sessions have closed: nothing more will come; stop asking.
      if (error.code === "session_closed") { stopped = true; onState("closed"); return; }
      // otherwise keep the token
    }
    if (stopped) return;
    const current = new WebSocket(`${socketUrl}?${credential}`);
    socket = current;
    // A handshake the node never answers (its accept queue overflowed in a reconnect storm)
    // is given up after 10 s; the close that follows retries with backoff.
    const handshake = setTimeout(() => { if (current.readyState === WebSocket.CONNECTING) current.close(); }, 10000);
    socket.addEventListener("open", () => { clearTimeout(handshake); attempt = 0; onState("open"); });
    socket.addEventListener("message", (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch { return; }
      onMessage(message);
    });
    socket.addEventListener("close", (event) => {
      clearTimeout(handshake);
      onState("closed");
      if (stopped) return;
      if ((event.code === 1012 || event.code === 1001) && attempt === 0) {
        attempt = 1;
        retry = setTimeout(open, 1000 * Math.random());
        return;
      }
      // 0.5 s, 1 s, 2 s … up to 30 s, each spread by ±50 % so that many browsers do not return at once.
      const base = Math.min(30000, 500 * 2 ** attempt);
      attempt += 1;
      retry = setTimeout(open, base * (0.5 + Math.random()));
    });
  }

  open();
  return {
    send(value) { if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(value)); },
    stop() { stopped = true; if (socket) socket.close(); },
  };
}

// The session token of a page: in the URL's fragment (never sent to a server log).
export function sessionToken() {
  const params = new URLSearchParams(location.hash.slice(1));
  return params.get("token") || "";
}

// Calls a JSON API path with the session token; errors carry the HTTP status and API code.
// Calls the JSON API with a bearer token, or (token null) with the console's session
// cookie and the extra headers given (its CSRF token).
export async function fetchJSON(path, token, { method = "GET", body, keepalive = false, headers = {} } = {}) {
  const response = await fetch(path, {
    method,
    keepalive,
    credentials: "same-origin",
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...headers, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(data.error ? data.error.message : `HTTP ${response.status}`);
    error.status = response.status;
    error.code = data.error ? data.error.code : "";
    throw error;
  }
  return data;
}

// Opens a page's session: who the token is and its exam's state, and the offset of the
// server's clock from the device's (pages show server time). Shows the title and who, or
// an error, and returns the session (null on error).
export async function openSession(token) {
  try {
    const sent = Date.now();
    const session = await fetchJSON("/api/session", token);
    const received = Date.now();
    session.clockOffsetMs = session.serverTimeMs - (sent + received) / 2;
    document.getElementById("title").textContent = session.title;
    document.getElementById("who").textContent = `${session.name} (${session.id})`;
    return session;
  } catch (error) {
    if (error.code === "session_closed") {
      // Nothing of the exam is left to show or connect to: only the reason stays.
      document.body.dataset.sessionClosed = "true";
      document.getElementById("error").textContent = t("common.sessionClosed");
    } else {
      document.getElementById("error").textContent = t("common.sessionError", { message: error.message });
    }
    return null;
  }
}

// Shows a connection state ("connecting", "open", "closed") in a .pill element.
export function showConnection(element, state) {
  element.className = `pill ${state === "open" ? "on" : "off"}`;
  element.dataset.state = state;
  element.textContent = t(state === "open" ? "common.connected" : state === "connecting" ? "common.connecting" : "common.reconnecting");
}
