// signIn.anonymous -> getSession -> signUp.email converts the guest, with the official client.
import { anonymousClient } from "better-auth/client/plugins";
import { browserClient, check } from "./lib.mjs";

const baseURL = process.argv[2];
const email = `guest-${Date.now()}-${Math.random().toString(36).slice(2)}@example.com`;
const { client } = browserClient(baseURL, [anonymousClient()]);

const g = await client.signIn.anonymous();
check(!g.error && g.data.user.isAnonymous === true, "signIn.anonymous creates a guest", g);
const guestId = g.data.user.id;

const s1 = await client.getSession();
check(s1.data?.user?.isAnonymous === true && s1.data.user.id === guestId, "getSession shows the guest", s1.data);

const again = await client.signIn.anonymous();
check(again.error?.code === "ANONYMOUS_USERS_CANNOT_SIGN_IN_AGAIN_ANONYMOUSLY", "a guest cannot sign in anonymously again", again.error);

const up = await client.signUp.email({ name: "Converted", email, password: "correct-horse" });
check(!up.error && up.data.user.isAnonymous === false, "signUp.email converts the guest", up);
check(up.data.user.id !== guestId, "the account is a new user");

const s2 = await client.getSession();
check(s2.data?.user?.email === email && s2.data.user.isAnonymous === false, "the session is the real account now", s2.data);

const del = await client.deleteAnonymousUser();
check(del.error?.code === "USER_IS_NOT_ANONYMOUS" && del.error.status === 403, "a real account cannot delete itself as a guest", del.error);

const { client: other } = browserClient(baseURL, [anonymousClient()]);
await other.signIn.anonymous();
const gone = await other.deleteAnonymousUser();
check(gone.data?.success === true, "deleteAnonymousUser removes a guest", gone);
const s3 = await other.getSession();
check(s3.data === null, "the deleted guest is signed out", s3);
console.log("all passed");
