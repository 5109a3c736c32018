// The shop page: a visitor lands as a guest, fills the cart, then converts with the
// official better-auth client (email and password, a magic link, or a passkey).
// `npm run build` bundles this file into ../static/app.js.
import { passkeyClient } from "@better-auth/passkey/client";
import { createAuthClient } from "better-auth/client";
import { anonymousClient, magicLinkClient, usernameClient } from "better-auth/client/plugins";

// The server tells the page where the auth routes are: the shop's own origin when they
// are mounted in the app, another port when the native server answers them.
const authURL = document.querySelector('meta[name="auth-url"]').content;
const auth = createAuthClient({
  baseURL: authURL,
  plugins: [anonymousClient(), usernameClient(), magicLinkClient(), passkeyClient()],
  fetchOptions: { credentials: "include" },
});

const $ = (selector) => document.querySelector(selector);
const money = (cents) => `$${(cents / 100).toFixed(2)}`;

async function shop(path, init = {}) {
  const res = await fetch(path, { credentials: "include", ...init });
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new Error(body?.message || body?.detail?.message || `${res.status}`);
  return body;
}

function say(message, failed = false) {
  const line = $("#status");
  line.textContent = message;
  line.className = failed ? "failed" : "";
}

// Runs an action, showing its error on the page instead of losing it in the console.
function action(fn) {
  return async (event) => {
    event?.preventDefault();
    try {
      await fn(event);
    } catch (e) {
      say(e.message || String(e), true);
    }
  };
}

// The better-auth client answers `{data, error}`; an error here is shown and stops the action.
function unwrap({ data, error }) {
  if (error) throw new Error(error.message || error.code || error.statusText || `${error.status}`);
  return data;
}

// A guest upgraded by a passkey keeps its placeholder address (under the reserved
// `.invalid` domain) until it gives an email: show its passkey account instead.
function shownName(user) {
  return user.email.endsWith(".invalid") ? "your passkey account" : user.email;
}

let session = null;

async function refresh() {
  session = unwrap(await auth.getSession());
  const user = session?.user;
  $("#who").textContent = !user
    ? "Signed out"
    : user.isAnonymous
      ? "Browsing as a guest"
      : `Signed in as ${shownName(user)}`;
  $("#user-id").textContent = user?.id ?? "";
  const cart = user ? await shop("/api/cart") : { items: [], total_cents: 0 };
  $("#cart").replaceChildren(
    ...cart.items.map((item) => {
      const row = document.createElement("li");
      row.dataset.sku = item.sku;
      row.textContent = `${item.quantity} × ${item.name} — ${money(item.quantity * item.price_cents)}`;
      return row;
    }),
  );
  $("#cart-total").textContent = money(cart.total_cents);
  $("#cart-count").textContent = String(cart.items.reduce((n, item) => n + item.quantity, 0));
  await showOutbox();
  // Last, once the page shows it all: what the tests (and the styles) key on.
  document.body.dataset.state = !user ? "signed-out" : user.isAnonymous ? "guest" : "member";
}

// A guest-first shop: a visitor without a session becomes a guest on arrival.
async function ensureVisitor() {
  const current = unwrap(await auth.getSession());
  if (!current) unwrap(await auth.signIn.anonymous());
}

async function showProducts() {
  const { products } = await shop("/api/products");
  $("#products").replaceChildren(
    ...products.map((p) => {
      const card = document.createElement("li");
      const add = document.createElement("button");
      add.textContent = "Add to cart";
      add.dataset.sku = p.sku;
      add.addEventListener(
        "click",
        action(async () => {
          await ensureVisitor();
          await shop(`/api/cart/${p.sku}`, { method: "POST" });
          say(`${p.name} added`);
          await refresh();
        }),
      );
      card.append(`${p.name} — ${money(p.price_cents)} `, add);
      return card;
    }),
  );
}

// The development outbox: magic links the shop would mail, shown on the page.
async function showOutbox() {
  const { mails } = await shop("/api/dev/outbox");
  $("#outbox").replaceChildren(
    ...mails.map((mail) => {
      const row = document.createElement("li");
      const link = document.createElement("a");
      link.href = mail.url;
      link.textContent = `Sign in as ${mail.email}`;
      link.className = "magic-link";
      row.append(link);
      return row;
    }),
  );
}

function field(form, name) {
  return form.elements.namedItem(name).value;
}

$("#sign-up").addEventListener(
  "submit",
  action(async (event) => {
    const form = event.target;
    unwrap(
      await auth.signUp.email({
        name: field(form, "name"),
        email: field(form, "email"),
        password: field(form, "password"),
        username: field(form, "username") || undefined,
      }),
    );
    say("Account created; your cart came with you");
    await refresh();
  }),
);

$("#sign-in").addEventListener(
  "submit",
  action(async (event) => {
    const form = event.target;
    const login = field(form, "login");
    const password = field(form, "password");
    unwrap(
      login.includes("@")
        ? await auth.signIn.email({ email: login, password })
        : await auth.signIn.username({ username: login, password }),
    );
    say("Signed in; your cart came with you");
    await refresh();
  }),
);

$("#magic-link").addEventListener(
  "submit",
  action(async (event) => {
    const form = event.target;
    unwrap(
      await auth.signIn.magicLink({
        email: field(form, "email"),
        name: field(form, "name") || undefined,
        callbackURL: `${location.origin}/`,
      }),
    );
    say("Link sent: open it from the outbox below");
    await showOutbox();
  }),
);

$("#add-passkey").addEventListener(
  "click",
  action(async () => {
    unwrap(await auth.passkey.addPasskey({ name: "this device" }));
    say("Passkey added");
    await refresh();
  }),
);

$("#passkey-sign-in").addEventListener(
  "click",
  action(async () => {
    unwrap(await auth.signIn.passkey());
    say("Signed in with your passkey");
    await refresh();
  }),
);

$("#checkout").addEventListener(
  "click",
  action(async () => {
    const order = await shop("/api/checkout", { method: "POST" });
    say(`Order ${order.id} placed: ${money(order.total_cents)}`);
    await refresh();
  }),
);

$("#sign-out").addEventListener(
  "click",
  action(async () => {
    unwrap(await auth.signOut());
    say("Signed out");
    await refresh();
  }),
);

$("#browse-as-guest").addEventListener(
  "click",
  action(async () => {
    await ensureVisitor();
    await refresh();
  }),
);

action(async () => {
  await showProducts();
  await ensureVisitor();
  await refresh();
  document.body.dataset.ready = "true";
})();
