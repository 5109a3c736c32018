// The cookie cache between a Better Auth 1.7.25 server and kernia, both with the same
// secret and `session.cookieCache` on: each answers get-session from the other's
// `session_data` cookie, although neither has the other's session in its database.
//
// node cookie-cache-interop.mjs <kernia base URL> <secret>
import { betterAuth } from "better-auth";
import { memoryAdapter } from "better-auth/adapters/memory";
import { getCookieCache } from "better-auth/cookies";
import { check } from "./lib.mjs";

const [base, secret] = process.argv.slice(2);
const origin = new URL(base).origin;

const ba = betterAuth({
  baseURL: "http://ba.localhost:3000",
  secret,
  database: memoryAdapter({ user: [], session: [], account: [], verification: [] }),
  emailAndPassword: { enabled: true },
  session: { cookieCache: { enabled: true, maxAge: 300 } },
});

function cookiesOf(response) {
  return response.headers.getSetCookie().map((line) => line.split(";")[0]);
}

function cookieHeader(pairs) {
  return pairs.filter((p) => !p.endsWith("=")).join("; ");
}

// 1. Better Auth signs Ada up; kernia answers get-session from Better Auth's cookies.
const signUp = await ba.handler(
  new Request("http://ba.localhost:3000/api/auth/sign-up/email", {
    method: "POST",
    headers: { "content-type": "application/json", origin: "http://ba.localhost:3000" },
    body: JSON.stringify({ name: "Ada Lovelace ü", email: "ada@example.com", password: "correct-horse" }),
  }),
);
check(signUp.status === 200, "Better Auth signs up", signUp.status);
const baCookies = cookiesOf(signUp);
check(baCookies.some((c) => c.startsWith("better-auth.session_data=")), "Better Auth writes session_data", baCookies);
const baSession = await (
  await ba.handler(
    new Request("http://ba.localhost:3000/api/auth/get-session", { headers: { cookie: cookieHeader(baCookies) } }),
  )
).json();

let res = await fetch(`${base}/api/auth/get-session`, { headers: { cookie: cookieHeader(baCookies), origin } });
const fromKernia = await res.json();
check(res.status === 200 && fromKernia !== null, "kernia answers from Better Auth's cache", fromKernia);
check(fromKernia.user.email === "ada@example.com" && fromKernia.user.name === "Ada Lovelace ü", "same user", fromKernia);
check(fromKernia.session.token === baSession.session.token, "same session", fromKernia.session);
check(fromKernia.session.expiresAt === baSession.session.expiresAt, "same expiry", fromKernia.session);
check(res.headers.getSetCookie().length === 0, "a cache hit sets no cookie", res.headers.getSetCookie());

res = await fetch(`${base}/api/auth/get-session?disableCookieCache=true`, {
  headers: { cookie: cookieHeader(baCookies), origin },
});
check((await res.text()) === "null", "kernia's database does not know Better Auth's session");

// 2. kernia signs Bob up; Better Auth answers get-session from kernia's cookies.
res = await fetch(`${base}/api/auth/sign-up/email`, {
  method: "POST",
  headers: { "content-type": "application/json", origin },
  body: JSON.stringify({ name: "Bob \"the\" Builder", email: "bob@example.com", password: "correct-horse" }),
});
check(res.status === 200, "kernia signs up", res.status);
const ourCookies = cookiesOf(res);
check(ourCookies.some((c) => c.startsWith("better-auth.session_data=")), "kernia writes session_data", ourCookies);

const cached = await getCookieCache(new Headers({ cookie: cookieHeader(ourCookies) }), { secret, isSecure: false });
check(cached?.user?.email === "bob@example.com", "Better Auth's getCookieCache verifies kernia's cookie", cached);

const fromBa = await (
  await ba.handler(
    new Request("http://ba.localhost:3000/api/auth/get-session", { headers: { cookie: cookieHeader(ourCookies) } }),
  )
).json();
check(fromBa?.user?.email === "bob@example.com", "Better Auth answers from kernia's cache", fromBa);
check(fromBa.user.name === 'Bob "the" Builder', "with the name as written", fromBa.user);

const tampered = ourCookies.map((c) => (c.startsWith("better-auth.session_data=") ? c.slice(0, -4) + "AAAA" : c));
const refused = await getCookieCache(new Headers({ cookie: cookieHeader(tampered) }), { secret, isSecure: false });
check(refused === null, "a tampered kernia cookie does not verify in Better Auth", refused);

console.log("all passed");
