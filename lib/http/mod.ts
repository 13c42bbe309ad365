/**
 * A small HTTP/1.1 server with hard limits (connections per address, header and body sizes,
 * timeouts), which a hostile client cannot make hold unbounded memory or stop. The tracker
 * and the daemon's RPC serve through it. Import as `@shoal/shoal/http`.
 *
 * @example Answer every request with "ok"
 * ```ts ignore
 * import { HttpServer } from "@shoal/shoal/http";
 * await using server = new HttpServer(() => new Response("ok\n"), { hostname: "127.0.0.1" });
 * console.log(server.listen().port);
 * ```
 *
 * @module
 */

export * from "./server.ts";
export * from "./limits.ts";
