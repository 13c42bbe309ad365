/**
 * The Transmission RPC endpoint, `/transmission/rpc`, as an `HttpHandler` for shoal's HTTP
 * server, and {@linkcode TransmissionRpcServer}, the two put together. The checks run in
 * Transmission's order:
 *
 * 1. HTTP Basic auth, when a username is configured: a wrong or missing login gets 401 with
 *    `WWW-Authenticate`; an address that failed `maxFailures` times in a window gets 429
 *    without its login being checked, until the window passes.
 * 2. `/transmission/web/` is not served yet (404); other paths get 404.
 * 3. The Host header, without auth (DNS rebinding): not an IP address, `localhost` or a name
 *    of `hostAllowList` → 421, Transmission's answer.
 * 4. The `X-Transmission-Session-Id` handshake (CSRF): no or wrong id → 409 carrying the
 *    id, random per endpoint.
 * 5. Only POST (405 otherwise, as Transmission); the body (capped by the server's limits:
 *    413) is dispatched, and every answer is HTTP 200 with `{result, arguments, tag}`.
 *
 * @module
 */

import { timingSafeEqual } from "node:crypto";
import type { Logger } from "../../log.ts";
import {
  type HttpHandler,
  type HttpRequestInfo,
  HttpServer,
  type HttpServerOptions,
} from "../../http/server.ts";
import type { TransmissionBackend } from "./backend.ts";
import { dispatchRpc } from "./dispatch.ts";
import { hostAllowed, MISDIRECTED_MESSAGE } from "./host_check.ts";
import { LoginLimiter, type LoginLimiterOptions } from "./login_limiter.ts";

/** The RPC path (Transmission's clients also use it with a final slash). */
export const RPC_PATH = "/transmission/rpc";
/** Most bytes of a request body the RPC server accepts by default (a .torrent in base64 fits). */
export const RPC_MAX_BODY_BYTES = 4 * 1024 * 1024;

/** Options of {@linkcode transmissionRpc}. */
export interface TransmissionRpcOptions {
  /** Require HTTP Basic auth with this username (and `password`). @default no auth */
  username?: string;
  /** The password for `username`. */
  password?: string;
  /**
   * Host names allowed in the Host header besides IP addresses and `localhost`; `*`
   * matches any run of characters (Transmission's `rpc-host-whitelist`). Not checked when
   * auth is on, as in Transmission. @default {[]}
   */
  hostAllowList?: readonly string[];
  /** Failed-login limits. */
  loginLimits?: LoginLimiterOptions;
  /** Where failures are logged. */
  logger?: Logger | undefined;
}

/** The endpoint's handler and what it holds. */
export interface TransmissionRpcHandler {
  /** Serves requests (give it to an `HttpServer`). */
  readonly handler: HttpHandler;
  /** The current `X-Transmission-Session-Id`. */
  readonly sessionId: string;
  /** The failed-login table. */
  readonly logins: LoginLimiter;
}

function html(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, {
    status,
    headers: { "content-type": "text/html; charset=UTF-8", server: "shoal", ...headers },
  });
}

function newSessionId(): string {
  return crypto.getRandomValues(new Uint8Array(36)).toBase64({ alphabet: "base64url" });
}

function sameSecret(given: string, expected: string): boolean {
  const a = new TextEncoder().encode(given);
  const b = new TextEncoder().encode(expected);
  // Compared in constant time; the lengths are compared after, so a length alone leaks nothing useful.
  const padded = new Uint8Array(b.length);
  padded.set(a.subarray(0, b.length));
  return timingSafeEqual(padded, b) && a.length === b.length;
}

function basicCredentials(header: string | null): { user: string; password: string } | null {
  const match = header === null ? null : /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (match === null) return null;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.fromBase64(match[1]!));
  } catch (error) {
    if (error instanceof SyntaxError || error instanceof TypeError) return null;
    throw error;
  }
  const colon = text.indexOf(":");
  return colon < 0 ? null : { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

/**
 * Makes the Transmission RPC handler over a backend.
 *
 * @example
 * ```ts ignore
 * import { HttpServer } from "@shoal/shoal/http";
 * import { sessionBackend, transmissionRpc } from "@shoal/shoal/rpc";
 * const rpc = transmissionRpc(sessionBackend(session, { downloadDir: "./downloads" }));
 * const server = new HttpServer(rpc.handler, { hostname: "127.0.0.1", port: 9091 });
 * server.listen();
 * ```
 *
 * @param backend What runs the torrents.
 * @param options Auth, host allow-list, login limits, logger.
 * @returns The handler, its session id and login table.
 * @throws {TypeError} when only one of `username`, `password` is given.
 */
export function transmissionRpc(
  backend: TransmissionBackend,
  options: TransmissionRpcOptions = {},
): TransmissionRpcHandler {
  if ((options.username === undefined) !== (options.password === undefined)) {
    throw new TypeError("Transmission RPC auth needs both a username and a password");
  }
  const sessionId = newSessionId();
  const logins = new LoginLimiter(options.loginLimits);
  const auth = options.username === undefined
    ? null
    : { user: options.username, password: options.password! };
  const allowList = options.hostAllowList ?? [];

  const handler = async (request: Request, info: HttpRequestInfo): Promise<Response> => {
    const client = info.remoteAddr.hostname;
    if (auth !== null) {
      const wait = logins.blockedFor(client);
      if (wait > 0) {
        return html(
          429,
          "<h1>429: Too Many Requests</h1><p>Too many unsuccessful login attempts. Try again later.</p>",
          {
            "retry-after": String(Math.ceil(wait / 1000)),
          },
        );
      }
      const given = basicCredentials(request.headers.get("authorization"));
      const ok = given !== null && sameSecret(given.user, auth.user) &&
        sameSecret(given.password, auth.password);
      if (!ok) {
        const failures = logins.failed(client);
        options.logger?.info("rpc", "Transmission RPC: unsuccessful login", { peer: client, failures });
        return html(
          401,
          `<h1>401: Unauthorized</h1><p>Unauthorized User. ${failures} unsuccessful login attempts.</p>`,
          {
            "www-authenticate": 'Basic realm="Transmission"',
          },
        );
      }
      logins.succeeded(client);
    }
    const path = new URL(request.url).pathname;
    if (path === "/transmission/web" || path.startsWith("/transmission/web/")) {
      return html(404, "<h1>404: Not Found</h1><p>shoal does not serve a web interface yet.</p>");
    }
    if (path !== RPC_PATH && path !== `${RPC_PATH}/`) return html(404, "<h1>404: Not Found</h1>");
    if (auth === null && !hostAllowed(request.headers.get("host"), allowList)) {
      return html(421, MISDIRECTED_MESSAGE);
    }
    if (request.headers.get("x-transmission-session-id") !== sessionId) {
      return html(
        409,
        "<h1>409: Conflict</h1><p>Your request had an invalid session-id header.</p><p>To fix this, read the " +
          "X-Transmission-Session-Id header of this answer, add it to your requests, and send this one again." +
          `</p><p><code>X-Transmission-Session-Id: ${sessionId}</code></p>`,
        { "x-transmission-session-id": sessionId },
      );
    }
    if (request.method !== "POST") return html(405, "<h1>405: Method Not Allowed</h1>", { allow: "POST" });
    const body = new TextDecoder().decode(await request.arrayBuffer());
    const response = await dispatchRpc(body, { backend, sessionId, logger: options.logger });
    return new Response(JSON.stringify(response), {
      headers: {
        "content-type": "application/json; charset=UTF-8",
        server: "shoal",
        "x-transmission-session-id": sessionId,
      },
    });
  };
  return { handler, sessionId, logins };
}

/** Options of {@linkcode TransmissionRpcServer}: the endpoint's and the HTTP server's. */
export interface TransmissionRpcServerOptions extends TransmissionRpcOptions {
  /** Address to listen on. @default {"127.0.0.1"} */
  hostname?: string;
  /** Port; 0 picks a free one (Transmission's is 9091). @default {0} */
  port?: number;
  /** HTTP limits; `maxBodyBytes` defaults to {@linkcode RPC_MAX_BODY_BYTES}. */
  limits?: HttpServerOptions["limits"];
}

/**
 * A Transmission RPC server: the endpoint on shoal's hardened HTTP server.
 *
 * @example
 * ```ts ignore
 * import { Session } from "@shoal/shoal";
 * import { sessionBackend, TransmissionRpcServer } from "@shoal/shoal/rpc";
 * await using session = new Session({ downloadDir: "./downloads" });
 * await using rpc = new TransmissionRpcServer(sessionBackend(session, { downloadDir: "./downloads" }), { port: 9091 });
 * rpc.listen();
 * // transmission-remote 127.0.0.1:9091 -l
 * ```
 */
export class TransmissionRpcServer implements AsyncDisposable {
  readonly #rpc: TransmissionRpcHandler;
  readonly #server: HttpServer;

  /**
   * Creates the server; nothing listens until {@linkcode TransmissionRpcServer.listen}.
   *
   * @param backend What runs the torrents.
   * @param options Address, auth, host allow-list, limits.
   */
  constructor(backend: TransmissionBackend, options: TransmissionRpcServerOptions = {}) {
    this.#rpc = transmissionRpc(backend, options);
    this.#server = new HttpServer(this.#rpc.handler, {
      hostname: options.hostname ?? "127.0.0.1",
      port: options.port ?? 0,
      limits: { maxBodyBytes: RPC_MAX_BODY_BYTES, ...options.limits },
      name: "Transmission RPC server",
      category: "rpc",
      logger: options.logger,
      onError: () => html(500, "<h1>500: Internal Server Error</h1>"),
    });
  }

  /**
   * Starts listening.
   *
   * @returns The address listened on.
   */
  listen(): Deno.NetAddr {
    return this.#server.listen();
  }

  /** The address listened on. @throws {Error} before {@linkcode TransmissionRpcServer.listen}. */
  get addr(): Deno.NetAddr {
    return this.#server.addr;
  }

  /** The current `X-Transmission-Session-Id`. */
  get sessionId(): string {
    return this.#rpc.sessionId;
  }

  /** The HTTP server (its counters). */
  get http(): HttpServer {
    return this.#server;
  }

  /**
   * Stops listening and closes every connection.
   *
   * @returns A promise that settles when nothing is left open.
   */
  close(): Promise<void> {
    return this.#server.close();
  }

  /** Same as {@linkcode TransmissionRpcServer.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
