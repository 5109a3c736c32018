// Email codes through the official client's emailOTPClient: a guest signs in with a code
// and is converted; a wrong code is refused; wrong codes run out; an expired code is
// refused (the test driving this script moves the server's clock when it says so).
import { readFileSync, existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { anonymousClient, emailOTPClient } from "better-auth/client/plugins";
import { browserClient, check } from "./lib.mjs";

const [baseURL, outbox] = process.argv.slice(2);
const stamp = `${Date.now()}-${Math.random().toString(36).slice(2)}`;
const plugins = () => [anonymousClient(), emailOTPClient()];
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

function lastCode(address, type) {
  const all = existsSync(outbox) ? readFileSync(outbox, "utf8").trim().split("\n") : [];
  return all.filter(Boolean).map((l) => JSON.parse(l)).filter((m) => m.email === address && m.type === type).at(-1)?.otp;
}

async function sendCode(client, email) {
  const sent = await client.emailOtp.sendVerificationOtp({ email, type: "sign-in" });
  check(!sent.error && sent.data.success === true, `emailOtp.sendVerificationOtp for ${email}`, sent);
  const otp = lastCode(email, "sign-in");
  check(/^[0-9]{6}$/.test(otp ?? ""), "a six-digit code was mailed", otp);
  return otp;
}

const wrongOf = (otp) => (otp === "000000" ? "111111" : "000000");

// A guest converts by signing in with a code.
const { client } = browserClient(baseURL, plugins());
const g = await client.signIn.anonymous();
check(g.data?.user?.isAnonymous === true, "signIn.anonymous creates a guest", g);
const email = `otp-${stamp}@example.com`;
const otp = await sendCode(client, email);
const wrong = await client.signIn.emailOtp({ email, otp: wrongOf(otp) });
check(wrong.error?.status === 400 && wrong.error.code === "INVALID_OTP", "a wrong code is refused", wrong.error);
const signed = await client.signIn.emailOtp({ email, otp });
check(!signed.error && signed.data.user.email === email && signed.data.user.emailVerified === true, "signIn.emailOtp signs in a new, verified user", signed);
check(signed.data.user.id !== g.data.user.id, "a new account, not the guest");
const s = await client.getSession();
check(s.data?.user?.id === signed.data.user.id && s.data.user.isAnonymous === false, "the guest became the real account", s.data);
const replay = await browserClient(baseURL, plugins()).client.signIn.emailOtp({ email, otp });
check(replay.error?.code === "INVALID_OTP", "a code works once", replay.error);

// Wrong codes run out.
const other = browserClient(baseURL, plugins()).client;
const email2 = `otp2-${stamp}@example.com`;
const otp2 = await sendCode(other, email2);
for (let i = 0; i < 3; i++) {
  const r = await other.signIn.emailOtp({ email: email2, otp: wrongOf(otp2) });
  check(r.error?.code === "INVALID_OTP", `wrong code ${i + 1} of 3`, r.error);
}
const out = await other.signIn.emailOtp({ email: email2, otp: otp2 });
check(out.error?.status === 403 && out.error.code === "TOO_MANY_ATTEMPTS", "then even the right code is refused", out.error);

// An expired code.
const email3 = `otp3-${stamp}@example.com`;
const otp3 = await sendCode(other, email3);
console.log("ADVANCE 301");
await lines.next();
const late = await other.signIn.emailOtp({ email: email3, otp: otp3 });
check(late.error?.status === 400 && late.error.code === "OTP_EXPIRED", "an expired code is refused", late.error);

console.log("all passed");
process.exit(0);
