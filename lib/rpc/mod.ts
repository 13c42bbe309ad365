/**
 * Remote control of shoal through Transmission's RPC protocol (rpc-version 17), so that
 * `transmission-remote`, remote GUIs and media tools drive shoal unchanged. The endpoint
 * (`/transmission/rpc`, with the session-id handshake, Basic auth, failed-login limits and
 * the Host check) runs on shoal's hardened HTTP server and calls a
 * {@linkcode TransmissionBackend}: `sessionBackend()` over a running session, or a daemon's
 * own. Import as `@shoal/shoal/rpc`.
 *
 * @example Serve a session to transmission-remote
 * ```ts ignore
 * import { Session } from "@shoal/shoal";
 * import { sessionBackend, TransmissionRpcServer } from "@shoal/shoal/rpc";
 * await using session = new Session({ downloadDir: "./downloads" });
 * await using rpc = new TransmissionRpcServer(sessionBackend(session, { downloadDir: "./downloads" }), {
 *   port: 9091,
 * });
 * rpc.listen(); // transmission-remote 127.0.0.1:9091 -l
 * ```
 *
 * @module
 */

export * from "./transmission/backend.ts";
export * from "./transmission/rpc_error.ts";
export * from "./transmission/endpoint.ts";
export * from "./transmission/session_backend.ts";
export { LoginLimiter, type LoginLimiterOptions } from "./transmission/login_limiter.ts";
export { type DispatchContext, dispatchRpc, RPC_METHODS, type RpcResponse } from "./transmission/dispatch.ts";
export { RPC_VERSION, RPC_VERSION_MINIMUM, TRANSMISSION_VERSION } from "./transmission/methods_session.ts";
