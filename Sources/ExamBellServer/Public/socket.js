// Shared WebSocket client of the candidate and proctor pages: connects with the session
// token, reconnects with exponential backoff and jitter, and reports its state.
export function connectSocket({ socketUrl, token, onMessage, onState }) {
  let attempt = 0;
  let socket = null;
  let stopped = false;

  function open() {
    if (stopped) return;
    onState("connecting");
    socket = new WebSocket(`${socketUrl}?token=${encodeURIComponent(token)}`);
    socket.addEventListener("open", () => { attempt = 0; onState("open"); });
    socket.addEventListener("message", (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch { return; }
      onMessage(message, socket);
    });
    socket.addEventListener("close", () => {
      onState("closed");
      if (stopped) return;
      // 0.5 s, 1 s, 2 s … up to 30 s, each spread by ±50 % so that many browsers do not return at once.
      const base = Math.min(30000, 500 * 2 ** attempt);
      attempt += 1;
      setTimeout(open, base * (0.5 + Math.random()));
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

// GET a JSON API path with the session token.
export async function fetchJSON(path, token) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${token}` } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error ? body.error.message : `HTTP ${response.status}`);
  return body;
}

// Formats an ISO time for people, in the browser's zone.
export function formatTime(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

// Opens a page's session: who the token is and its exam's state; shows the title and who,
// or an error, and returns the session (null on error).
export async function openSession(token, { titleSuffix = "" } = {}) {
  try {
    const session = await fetchJSON("/api/session", token);
    document.getElementById("title").textContent = session.title + titleSuffix;
    document.getElementById("who").textContent = `${session.name} (${session.id})`;
    return session;
  } catch (error) {
    document.getElementById("error").textContent = `세션을 열 수 없습니다: ${error.message}`;
    return null;
  }
}
