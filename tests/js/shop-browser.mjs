// The example shop in headless Chromium (Debian's, driven by playwright-core), with the
// DevTools WebAuthn virtual authenticator for passkeys.
//
//   node shop-browser.mjs SHOP_URL SCENARIO ARTIFACTS_DIR [TAG]
//
// SCENARIO is sign-up, magic-link or passkey. Each drives the page as a visitor would,
// checks what the page and the server say, saves a screenshot of every end state in
// ARTIFACTS_DIR, and prints `facts: {...}` (user ids) for the caller to check the database.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [shopURL, scenario, artifacts, tag = String(Date.now())] = process.argv.slice(2);
// Emails unique to the run, for a database other runs have used.
const email = (name) => `${name}+${tag}@example.com`;
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
mkdirSync(artifacts, { recursive: true });

// A failed check throws, so the page's state is screenshotted before the script exits.
function check(condition, message, detail) {
  if (!condition) throw new Error(`${message}${detail === undefined ? "" : ` ${JSON.stringify(detail)}`}`);
  console.log(`ok: ${message}`);
}

const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
const facts = {};
let page;

async function openShop(context) {
  const p = await context.newPage();
  p.on("pageerror", (e) => console.error(`page error: ${e.message}`));
  await p.goto(shopURL);
  await p.waitForSelector("body[data-ready=true]", { timeout: 15000 });
  return p;
}

async function state(p) {
  return p.evaluate(() => ({
    state: document.body.dataset.state,
    id: document.querySelector("#user-id").textContent,
    cart: [...document.querySelectorAll("#cart li")].map((li) => li.textContent),
    count: Number(document.querySelector("#cart-count").textContent),
    status: document.querySelector("#status").textContent,
  }));
}

async function waitForState(p, wanted) {
  try {
    await p.waitForSelector(`body[data-state=${wanted}]`, { timeout: 15000 });
  } catch (e) {
    throw new Error(`the page never reached ${wanted}: ${JSON.stringify(await state(p))}`);
  }
  return state(p);
}

async function addToCart(p, sku, times = 1) {
  for (let i = 0; i < times; i += 1) {
    const before = (await state(p)).count;
    await p.click(`#products button[data-sku=${sku}]`);
    await p.waitForFunction((n) => Number(document.querySelector("#cart-count").textContent) > n, before);
  }
}

async function sessionCookie(context) {
  const cookies = await context.cookies();
  return cookies.find((c) => c.name.endsWith("better-auth.session_token"));
}

// What the auth server answers a get-session with only this cookie: null for a dead session.
async function sessionFor(p, cookie) {
  const authURL = await p.evaluate(() => document.querySelector('meta[name="auth-url"]').content);
  const res = await fetch(`${authURL}/get-session`, { headers: { cookie: `${cookie.name}=${cookie.value}` } });
  return res.json();
}

async function screenshot(p, name) {
  const path = join(artifacts, `${name}.png`);
  await p.screenshot({ path, fullPage: true });
  console.log(`screenshot: ${path}`);
}

async function virtualAuthenticator(p) {
  const cdp = await p.context().newCDPSession(p);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { cdp, authenticatorId };
}

async function signUp() {
  const context = await browser.newContext();
  page = await openShop(context);
  const guest = await waitForState(page, "guest");
  check(/^Browsing as a guest/.test(await page.textContent("#who")), "a visitor lands as a guest");
  await addToCart(page, "tea", 2);
  await addToCart(page, "mug");
  const guestCookie = await sessionCookie(context);
  check(guestCookie, "the guest has a session cookie");
  await page.fill("#sign-up [name=name]", "Ada Guest");
  await page.fill("#sign-up [name=email]", email("ada"));
  await page.fill("#sign-up [name=password]", "correct horse battery");
  await page.fill("#sign-up [name=username]", `ada_${tag}`);
  await page.click("#sign-up button");
  const member = await waitForState(page, "member");
  check(member.id && member.id !== guest.id, "sign-up made a new account", member);
  check(member.count === 3 && member.cart.length === 2, "the cart came along: 2 teas and a mug", member.cart);
  check((await page.textContent("#who")).includes(email("ada")), "the page shows the account");
  check((await sessionFor(page, guestCookie)) === null, "the guest's old cookie is dead");
  const alive = await sessionFor(page, await sessionCookie(context));
  check(alive?.user?.id === member.id, "the new cookie is the account's session");
  await page.click("#checkout");
  await page.waitForFunction(() => /^Order \w+ placed/.test(document.querySelector("#status").textContent));
  await page.waitForFunction(() => document.querySelectorAll("#cart li").length === 0);
  check((await state(page)).count === 0, "a member checks out: the cart is empty");
  // Back later, by username (the username plugin's client).
  await page.click("#sign-out");
  await waitForState(page, "signed-out");
  await page.fill("#sign-in [name=login]", `ada_${tag}`);
  await page.fill("#sign-in [name=password]", "correct horse battery");
  await page.click("#sign-in button");
  const back = await waitForState(page, "member");
  check(back.id === member.id, "signed in again by username", back);
  await screenshot(page, "sign-up");
  Object.assign(facts, { guest: guest.id, user: member.id });
}

async function magicLink() {
  const context = await browser.newContext();
  page = await openShop(context);
  const guest = await waitForState(page, "guest");
  await addToCart(page, "kettle");
  const guestCookie = await sessionCookie(context);
  // A guest cannot check out: the shop's route answers 403 GUEST_NOT_ALLOWED.
  await page.click("#checkout");
  await page.waitForSelector("#status.failed");
  await page.fill("#magic-link [name=email]", email("grace"));
  await page.fill("#magic-link [name=name]", "Grace");
  await page.click("#magic-link button");
  await page.waitForSelector("#outbox a.magic-link");
  await screenshot(page, "magic-link-sent");
  // Opened in the page, as from a mail: the auth server verifies it and sends the browser back.
  await Promise.all([page.waitForURL(`${shopURL}/`), page.click("#outbox a.magic-link")]);
  await page.waitForSelector("body[data-ready=true]");
  const member = await waitForState(page, "member");
  check(member.id && member.id !== guest.id, "the magic link converted the guest into a new account", member);
  check(member.count === 1 && member.cart[0].includes("kettle"), "the cart came along", member.cart);
  check((await page.textContent("#who")).includes(email("grace")), "signed in as the link's email");
  check((await sessionFor(page, guestCookie)) === null, "the guest's old cookie is dead");
  await screenshot(page, "magic-link");
  Object.assign(facts, { guest: guest.id, user: member.id });
}

async function passkeys() {
  // First browser: a guest adds a passkey and is upgraded in place.
  const first = await browser.newContext();
  page = await openShop(first);
  const { cdp, authenticatorId } = await virtualAuthenticator(page);
  const guest = await waitForState(page, "guest");
  await addToCart(page, "honey");
  await page.click("#add-passkey");
  await page.waitForFunction(() => document.querySelector("#status").textContent === "Passkey added");
  const upgraded = await waitForState(page, "member");
  check(upgraded.id === guest.id, "a passkey upgrades the guest in place: same id", upgraded);
  const me = await sessionFor(page, await sessionCookie(first));
  check(me.user.isAnonymous === false, "isAnonymous is false", me.user);
  check(upgraded.count === 1, "the cart is still there", upgraded.cart);
  await screenshot(page, "passkey-upgraded");

  await page.click("#sign-out");
  await waitForState(page, "signed-out");
  check((await sessionCookie(first)) === undefined, "signing out clears the cookie");
  await page.click("#passkey-sign-in");
  const back = await waitForState(page, "member");
  check(back.id === guest.id, "signed in again with the passkey", back);
  check(back.count === 1, "the account's cart is there", back.cart);
  await screenshot(page, "passkey-signed-in");
  // The credential as it is now: its signature counter has moved with each use, and the
  // server refuses a counter that goes back (a cloned authenticator).
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  check(credentials.length === 1 && credentials[0].isResidentCredential, "one discoverable credential", credentials);

  // Second browser: another guest, the same passkey (on a synced authenticator): converted.
  const second = await browser.newContext();
  page = await openShop(second);
  const other = await virtualAuthenticator(page);
  await other.cdp.send("WebAuthn.addCredential", { authenticatorId: other.authenticatorId, credential: credentials[0] });
  const secondGuest = await waitForState(page, "guest");
  check(secondGuest.id !== guest.id, "the second browser is a new guest");
  await addToCart(page, "tea");
  const secondGuestCookie = await sessionCookie(second);
  await page.click("#passkey-sign-in");
  const converted = await waitForState(page, "member");
  check(converted.id === guest.id, "the second guest signed in to the passkey's account", converted);
  check(converted.count === 2 && converted.cart.length === 2, "both carts joined: honey and tea", converted.cart);
  check((await sessionFor(page, secondGuestCookie)) === null, "the second guest's old cookie is dead");
  await screenshot(page, "passkey-converted");
  Object.assign(facts, { guest: secondGuest.id, user: guest.id });
}

const scenarios = { "sign-up": signUp, "magic-link": magicLink, passkey: passkeys };
try {
  await scenarios[scenario]();
  console.log(`facts: ${JSON.stringify(facts)}`);
  console.log("all passed");
} catch (e) {
  if (page) await screenshot(page, `${scenario}-failed`).catch(() => {});
  console.error(`FAIL: ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
