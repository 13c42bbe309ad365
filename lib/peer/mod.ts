/**
 * The peer wire protocol's extensions and limits, for code that builds on them: metadata
 * exchange (BEP 9), peer exchange (BEP 11), rate limiting, listener caps and client names
 * from peer ids. Import as `@shoal/shoal/peer`.
 *
 * @example Name the client behind a peer id
 * ```ts
 * import { clientName } from "./mod.ts";
 * console.log(clientName(new TextEncoder().encode("-TR4060-abcdefghijkl"))); // "Transmission 4.0.6"
 * ```
 *
 * @module
 */

export * from "./ut_metadata.ts";
export * from "./ut_pex.ts";
export * from "./rate_limiter.ts";
export * from "./listener_limits.ts";
export { clientCode, clientName } from "./client_id.ts";
export type { HandshakenPeer } from "./handshake_read.ts";
export type { Handshake } from "../wire/handshake.ts";
