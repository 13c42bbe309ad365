/**
 * The constants of the UDP tracker protocol (BEP 15), shared by the client
 * (`udp_tracker.ts`) and the built-in tracker (`server_udp.ts`).
 *
 * @module
 */

/** The magic constant of a BEP 15 connect request. */
export const PROTOCOL_ID = 0x41727101980n;
/** Action of a connect request and answer. */
export const ACTION_CONNECT = 0;
/** Action of an announce request and answer. */
export const ACTION_ANNOUNCE = 1;
/** Action of a scrape request and answer. */
export const ACTION_SCRAPE = 2;
/** Action of an error answer. */
export const ACTION_ERROR = 3;
/** Most info-hashes in one scrape (what fits in a datagram of a common MTU). */
export const MAX_SCRAPE_HASHES = 74;
