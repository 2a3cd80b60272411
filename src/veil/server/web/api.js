// Talking to the gateway's REST API (/api, described at /api/docs).
//
// The session is a cookie (HttpOnly: scripts never see it). Every change (POST, PUT, PATCH,
// DELETE) also carries the session's CSRF token in the X-CSRF-Token header; the token comes
// from POST /api/login or GET /api/me and is kept in memory only.

/** An error reply: `status` is the HTTP status, `detail` and `hint` the server's words. */
export class ApiError extends Error {
  constructor(status, detail, hint, errors) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail || `HTTP ${status}`;
    this.hint = hint || null;
    this.errors = errors || [];
  }

  /** One line for the user: the message and, when the server gave one, how to fix it. */
  toString() {
    return this.hint ? `${this.detail} (${this.hint})` : this.detail;
  }
}

let csrfToken = null;

/** Remember the CSRF token of the current session (null after logout). */
export function setCsrfToken(token) {
  csrfToken = token || null;
}

/**
 * Call the API. `body` (if any) is sent as JSON; the reply's JSON is returned (or the
 * Response itself with `raw: true`). Error replies throw an ApiError.
 */
export async function api(method, path, body = undefined, { raw = false } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let reply;
  try {
    reply = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (error) {
    throw new ApiError(0, `the gateway cannot be reached (${error.message})`, null);
  }
  if (reply.status === 401 && path !== "/api/login" && path !== "/api/me") {
    // The session ended (expired, logged out elsewhere, user disabled): the page goes back
    // to the login form (app.js listens), whichever view or timer made the request.
    window.dispatchEvent(new Event("veil:unauthorized"));
  }
  if (!reply.ok) {
    let data = {};
    try {
      data = await reply.json();
    } catch {
      // Not JSON (a proxy's error page, say): the status says enough.
    }
    throw new ApiError(reply.status, data.detail, data.hint, data.errors);
  }
  if (raw) return reply;
  if (reply.status === 204) return null;
  return reply.json();
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body ?? {});
export const put = (path, body) => api("PUT", path, body);
export const patch = (path, body) => api("PATCH", path, body);
export const del = (path) => api("DELETE", path);

/** A path segment, escaped (camera ids and user names come from the server). */
export const seg = (text) => encodeURIComponent(String(text));
