// Calls to wapi's JSON API from the dashboard (same origin, session cookie).
export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || (body && body.message) || `request failed (${status})`);
    this.status = status;
    this.code = e.code || (body && body.code) || "";
    this.field = e.field || "";
  }
}

// body: an object sent as JSON, or FormData sent as multipart/form-data (the
// browser writes its Content-Type with the boundary).
export async function api(path, { method = "GET", body } = {}) {
  const opts = { method, credentials: "same-origin", headers: {} };
  if (body instanceof FormData) {
    opts.body = body;
  } else if (body !== undefined) {
    opts.headers["content-type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, opts);
  } catch {
    throw new ApiError(0, { error: { message: "cannot reach the server" } });
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

export const auth = {
  session: () => api("/api/auth/get-session"),
  signIn: (email, password) => api("/api/auth/sign-in/email", { method: "POST", body: { email, password } }),
  signUp: (name, email, password, extra = {}) =>
    api("/api/auth/sign-up/email", { method: "POST", body: { name, email, password, ...extra } }),
  signOut: () => api("/api/auth/sign-out", { method: "POST", body: {} }),
};
