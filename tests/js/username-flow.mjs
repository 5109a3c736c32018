// A guest signs up with a username, then another guest signs in with it: both convert.
import { anonymousClient, usernameClient } from "better-auth/client/plugins";
import { browserClient, check } from "./lib.mjs";

const baseURL = process.argv[2];
const tag = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const name = `Ada_${tag}`;
const plugins = () => [anonymousClient(), usernameClient()];

const { client } = browserClient(baseURL, plugins());
const free = await client.isUsernameAvailable({ username: name });
check(free.data?.available === true, "isUsernameAvailable says yes", free);
const bad = await client.isUsernameAvailable({ username: "no spaces" });
check(bad.error?.code === "INVALID_USERNAME" && bad.error.status === 422, "an invalid username is 422", bad.error);

const g = await client.signIn.anonymous();
check(g.data?.user?.isAnonymous === true, "signIn.anonymous creates a guest", g);
const up = await client.signUp.email({ name: "Ada", email: `${tag}@example.com`, password: "correct-horse", username: name });
check(!up.error && up.data.user.username === name.toLowerCase() && up.data.user.displayUsername === name, "signUp.email with a username converts the guest", up);
check(up.data.user.id !== g.data.user.id && up.data.user.isAnonymous === false, "into a new, real user");
const s1 = await client.getSession();
check(s1.data?.user?.username === name.toLowerCase(), "getSession shows the username", s1.data);

const taken = await client.isUsernameAvailable({ username: name.toUpperCase() });
check(taken.data?.available === false, "the username is taken now, whatever its case", taken);

const { client: second } = browserClient(baseURL, plugins());
const g2 = await second.signIn.anonymous();
check(g2.data?.user?.isAnonymous === true, "a second guest", g2);
const wrong = await second.signIn.username({ username: name, password: "wrong-password" });
check(wrong.error?.code === "INVALID_USERNAME_OR_PASSWORD" && wrong.error.status === 401, "a wrong password is 401", wrong.error);
const inn = await second.signIn.username({ username: name.toUpperCase(), password: "correct-horse" });
check(!inn.error && inn.data.user.id === up.data.user.id && inn.data.redirect === false, "signIn.username converts the second guest", inn);
const s2 = await second.getSession();
check(s2.data?.user?.id === up.data.user.id && s2.data.user.isAnonymous === false, "the second browser is the real account", s2.data);
console.log("all passed");
