// Better Auth 1.7.25 on Node with the anonymous plugin, on PostgreSQL through pg.
// node better_auth_server.mjs DATABASE_URL PORT
import http from "node:http";
import pg from "pg";
import { betterAuth } from "better-auth";
import { anonymous } from "better-auth/plugins";
import { toNodeHandler } from "better-auth/node";
import { getMigrations } from "better-auth/db/migration";

const [databaseURL, port] = process.argv.slice(2);
const auth = betterAuth({
  database: new pg.Pool({ connectionString: databaseURL, max: 10 }),
  secret: "bench-secret-0123456789abcdef0123456789",
  baseURL: `http://127.0.0.1:${port}`,
  emailAndPassword: { enabled: true },
  plugins: [anonymous()],
  rateLimit: { enabled: false },
});
const { runMigrations } = await getMigrations(auth.options);
await runMigrations();
http.createServer(toNodeHandler(auth)).listen(Number(port), "127.0.0.1", () => console.log("ready"));
