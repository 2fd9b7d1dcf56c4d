// What the candidate and proctor pages share beside the browser SDK (`/sdk/exambell.js`,
// which owns the socket and the server's clock): the session token, JSON calls, the
// connection indicator, a session's error.
import { t } from "/static/i18n.js";
import { connect } from "/sdk/exambell.js";

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

// Shows why a page's session could not open: closed (nothing of the exam is left to show
// or connect to), or another error.
export function showSessionError(error) {
  if (error.code === "session_closed") {
    document.body.dataset.sessionClosed = "true";
    document.getElementById("error").textContent = t("common.sessionClosed");
  } else {
    document.getElementById("error").textContent = t("common.sessionError", { message: error.message });
  }
}

// Shows a connection state ("connecting", "open", "closed") in a .pill element.
export function showConnection(element, state) {
  element.className = `pill ${state === "open" ? "on" : "off"}`;
  element.dataset.state = state;
  element.textContent = t(state === "open" ? "common.connected" : state === "connecting" ? "common.connecting" : "common.reconnecting");
}

// Connects an own page (candidate or proctor) on the SDK, shows "connecting" on `connection`
// meanwhile, and its title and person once known; null (the error shown) when the session
// is refused.
export async function connectPage(token, connection) {
  showConnection(connection, "connecting");
  let bell;
  try {
    bell = await connect({ token, baseUrl: location.origin });
  } catch (error) {
    showSessionError(error);
    return null;
  }
  const session = bell.info;
  document.getElementById("title").textContent = session.title;
  document.getElementById("who").textContent = `${session.name} (${session.id})`;
  return bell;
}
