// A cookie jar for Node's fetch, so the client behaves like a browser: it keeps
// the server's cookies and sends an Origin header on every request.
import { createAuthClient } from "better-auth/client";

export function browserClient(baseURL, plugins = []) {
  const jar = new Map();
  async function fetchWithCookies(input, init = {}) {
    const headers = new Headers(init.headers || {});
    if (jar.size) headers.set("cookie", [...jar].map(([k, v]) => `${k}=${v}`).join("; "));
    headers.set("origin", new URL(baseURL).origin);
    const res = await fetch(input, { ...init, headers });
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(";");
      const eq = pair.indexOf("=");
      const name = pair.slice(0, eq).trim();
      if (attrs.some((a) => a.trim().toLowerCase() === "max-age=0")) jar.delete(name);
      else jar.set(name, pair.slice(eq + 1));
    }
    return res;
  }
  const client = createAuthClient({ baseURL, plugins, fetchOptions: { customFetchImpl: fetchWithCookies } });
  return { client, jar };
}

export function check(condition, message, detail) {
  if (!condition) {
    console.error(`FAIL: ${message}`, detail === undefined ? "" : JSON.stringify(detail));
    process.exit(1);
  }
  console.log(`ok: ${message}`);
}
