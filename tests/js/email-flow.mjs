// sign-up -> get-session -> sign-out -> sign-in -> get-session with the official client.
import { browserClient, check } from "./lib.mjs";

const baseURL = process.argv[2];
const email = `js-${Date.now()}-${Math.random().toString(36).slice(2)}@example.com`;
const { client, jar } = browserClient(baseURL);

const up = await client.signUp.email({ name: "Ada", email, password: "correct-horse" });
check(!up.error, "signUp.email succeeds", up.error);
check(up.data.user.email === email && typeof up.data.token === "string", "sign-up returns token and user", up.data);
check(jar.has("better-auth.session_token"), "the session cookie is stored");

const s1 = await client.getSession();
check(s1.data?.user?.id === up.data.user.id, "getSession returns the new user", s1);
check(s1.data.session.expiresAt instanceof Date, "dates arrive as ISO strings the client revives", s1.data.session);
check(s1.data.user.createdAt instanceof Date, "user dates are revived too");

const out = await client.signOut();
check(out.data?.success === true, "signOut succeeds", out);
const s2 = await client.getSession();
check(s2.data === null && !s2.error, "getSession is null after sign-out", s2);

const bad = await client.signIn.email({ email, password: "wrong-password" });
check(bad.error?.status === 401 && bad.error.code === "INVALID_EMAIL_OR_PASSWORD", "a wrong password is a 401 with its code", bad.error);

const dup = await client.signUp.email({ name: "Again", email, password: "correct-horse" });
check(dup.error?.status === 422 && dup.error.code === "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL", "a duplicate sign-up is a 422", dup.error);

const inn = await client.signIn.email({ email, password: "correct-horse" });
check(!inn.error && inn.data.redirect === false && inn.data.user.id === up.data.user.id, "signIn.email succeeds", inn);
const s3 = await client.getSession();
check(s3.data?.user?.email === email, "getSession returns the signed-in user", s3);
console.log("all passed");
