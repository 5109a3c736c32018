// An account page through the official client: sign up, verify the email from the
// captured mail, rename, change the password (other sessions revoked), list and revoke
// sessions, reset the password from the mailed link, change the email, delete the account.
import { readFileSync, existsSync } from "node:fs";
import { browserClient, check } from "./lib.mjs";

const [baseURL, outbox] = process.argv.slice(2);
const email = `acct-${Date.now()}-${Math.random().toString(36).slice(2)}@example.com`;
const password = "correct-horse-battery";

function lastMail(kind, address) {
  const lines = existsSync(outbox) ? readFileSync(outbox, "utf8").trim().split("\n") : [];
  const mails = lines.filter(Boolean).map((l) => JSON.parse(l));
  return mails.filter((m) => m.kind === kind && m.email === address).at(-1);
}

function cookieHeader(jar) {
  return [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
}

const { client, jar } = browserClient(baseURL);

const up = await client.signUp.email({ email, password, name: "Ada", callbackURL: "/welcome" });
check(!up.error && up.data.token === null && up.data.user.emailVerified === false, "signUp.email waits for verification", up);
const refused = await client.signIn.email({ email, password });
check(refused.error?.status === 403 && refused.error.code === "EMAIL_NOT_VERIFIED", "signIn.email is refused until verified", refused.error);

const verifyMail = lastMail("verify-email", email);
check(verifyMail && new URL(verifyMail.url).searchParams.get("callbackURL") === "/welcome", "the verification mail links back to /welcome", verifyMail);
const verified = await client.verifyEmail({ query: { token: verifyMail.token } });
check(!verified.error && verified.data.status === true, "verifyEmail verifies", verified);
let s = await client.getSession();
check(s.data?.user?.email === email && s.data.user.emailVerified === true, "and signs the user in, verified", s.data);

const renamed = await client.updateUser({ name: "Ada Lovelace" });
check(!renamed.error && renamed.data.status === true, "updateUser", renamed);
s = await client.getSession();
check(s.data.user.name === "Ada Lovelace", "the new name shows in the session", s.data.user);

const laptop = browserClient(baseURL);
const laptopIn = await laptop.client.signIn.email({ email, password });
check(!laptopIn.error, "a second device signs in", laptopIn);
const listed = await client.listSessions();
check(!listed.error && listed.data.length === 2 && listed.data.every((x) => x.userId === s.data.user.id), "listSessions shows both sessions", listed);

const changed = await client.changePassword({ currentPassword: password, newPassword: "new-horse-battery", revokeOtherSessions: true });
check(!changed.error && typeof changed.data.token === "string", "changePassword with revokeOtherSessions", changed);
// A device whose session was revoked elsewhere keeps answering from its cookie cache (when
// the server has one) until the cache is old: the database's answer is the one to check.
const fromDatabase = { query: { disableCookieCache: true } };
check((await laptop.client.getSession(fromDatabase)).data === null, "the other device is signed out");
check((await client.getSession()).data?.user?.email === email, "this device stays signed in on its new session");

const tablet = browserClient(baseURL);
const tabletIn = await tablet.client.signIn.email({ email, password: "new-horse-battery" });
check(!tabletIn.error, "the new password signs in", tabletIn);
const revoked = await client.revokeSession({ token: tabletIn.data.token });
check(!revoked.error && revoked.data.status === true, "revokeSession", revoked);
check((await tablet.client.getSession(fromDatabase)).data === null, "the revoked device is signed out");

const accounts = await client.listAccounts();
check(!accounts.error && accounts.data.length === 1 && accounts.data[0].providerId === "credential", "listAccounts", accounts);

const asked = await client.requestPasswordReset({ email, redirectTo: "/reset" });
check(!asked.error && asked.data.status === true, "requestPasswordReset", asked);
const resetMail = lastMail("reset-password", email);
const page = await fetch(resetMail.url, { redirect: "manual" });
const landing = new URL(page.headers.get("location"));
check(page.status === 302 && landing.pathname === "/reset" && landing.searchParams.get("token") === resetMail.token, "the mailed link lands on /reset with the token", landing.href);
const reset = await client.resetPassword({ newPassword: "reset-horse-battery", token: landing.searchParams.get("token") });
check(!reset.error && reset.data.status === true, "resetPassword", reset);
const other = browserClient(baseURL);
check(!(await other.client.signIn.email({ email, password: "reset-horse-battery" })).error, "the reset password signs in");

const newEmail = `new-${email}`;
const change = await client.changeEmail({ newEmail, callbackURL: "/settings" });
check(!change.error && change.data.status === true, "changeEmail", change);
const confirmMail = lastMail("change-email", email);
check(confirmMail?.new_email === newEmail, "a verified user first confirms from the old address", confirmMail);
const confirming = await client.verifyEmail({ query: { token: confirmMail.token } });
check(!confirming.error && confirming.data.status === true, "opening the confirmation", confirming);
const changeMail = lastMail("verify-email", newEmail);
check(changeMail !== undefined, "then a verification link goes to the new address");
const confirmed = await client.verifyEmail({ query: { token: changeMail.token } });
check(!confirmed.error && confirmed.data.user?.email === newEmail, "opening it changes the email", confirmed);

const deleting = await client.deleteUser({ callbackURL: "/goodbye" });
check(!deleting.error && deleting.data.message === "Verification email sent", "deleteUser mails a confirmation", deleting);
const deleteMail = lastMail("delete-account", newEmail);
const gone = await fetch(deleteMail.url, { redirect: "manual", headers: { cookie: cookieHeader(jar), origin: new URL(baseURL).origin } });
check(gone.status === 302 && gone.headers.get("location") === "/goodbye", "the confirmation link deletes and redirects", { status: gone.status });
check((await other.client.getSession(fromDatabase)).data === null, "every session of the deleted account ends");
const afterDelete = await browserClient(baseURL).client.signIn.email({ email: newEmail, password: "reset-horse-battery" });
check(afterDelete.error?.status === 401, "the account is gone", afterDelete.error);
console.log("all passed");
