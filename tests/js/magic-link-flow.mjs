// A guest asks for a magic link and opens it: the guest converts to the email's new user.
import { readFileSync, existsSync } from "node:fs";
import { anonymousClient, magicLinkClient } from "better-auth/client/plugins";
import { browserClient, check } from "./lib.mjs";

const [baseURL, outbox] = process.argv.slice(2);
const email = `link-${Date.now()}-${Math.random().toString(36).slice(2)}@example.com`;
const plugins = () => [anonymousClient(), magicLinkClient()];

function lastLinkFor(address) {
  const lines = existsSync(outbox) ? readFileSync(outbox, "utf8").trim().split("\n") : [];
  const mine = lines.filter(Boolean).map((l) => JSON.parse(l)).filter((m) => m.email === address);
  return mine.at(-1);
}

const { client } = browserClient(baseURL, plugins());
const g = await client.signIn.anonymous();
check(g.data?.user?.isAnonymous === true, "signIn.anonymous creates a guest", g);

const sent = await client.signIn.magicLink({ email, name: "Linked", callbackURL: "/dashboard" });
check(sent.data?.status === true, "signIn.magicLink sends a link", sent);
const mail = lastLinkFor(email);
check(mail && new URL(mail.url).searchParams.get("callbackURL") === "/dashboard", "the link carries the callback URL", mail);

const verified = await client.magicLink.verify({ query: { token: mail.token } });
check(!verified.error && verified.data.user.email === email && verified.data.user.emailVerified === true, "magicLink.verify signs in the new, verified user", verified);
check(verified.data.user.id !== g.data.user.id && verified.data.session.userId === verified.data.user.id, "a new user with its session");
const s = await client.getSession();
check(s.data?.user?.id === verified.data.user.id && s.data.user.isAnonymous === false, "the guest became the real account", s.data);

// Opened again, as a browser would from the email: a redirect that reports the error.
const again = await fetch(mail.url, { redirect: "manual" });
const to = new URL(again.headers.get("location") ?? "", baseURL);
check(again.status === 302 && to.pathname === "/dashboard" && to.searchParams.get("error") === "INVALID_TOKEN", "a used link redirects with error=INVALID_TOKEN", { status: again.status, location: to.href });
check(again.headers.getSetCookie().length === 0, "and sets no cookie");
console.log("all passed");
