/**
 * The limits of the peer listener (incoming BitTorrent connections) and of outgoing dials:
 * connections that have not finished the handshake yet are capped globally and per
 * address, and every socket counts against the process's descriptor budget
 * (`lib/net/descriptor_budget.ts`).
 *
 * @module
 */

/**
 * Most incoming connections waiting for their handshake at once. A new one past it evicts
 * the oldest waiting one (a real peer sends its handshake within one round trip; a host
 * that connects and sends nothing is what gets evicted). 128 is far above what a home seed
 * sees from real peers (tens per minute) and far below the usual descriptor limit of 1 024.
 */
export const MAX_PENDING_HANDSHAKES = 128;

/**
 * Most incoming connections from one IP address waiting for their handshake; more are
 * refused at once. Real clients open one connection per torrent, a household behind NAT a
 * few.
 */
export const MAX_PENDING_HANDSHAKES_PER_ADDRESS = 4;

/**
 * Most outgoing dials (TCP connect plus handshake) in progress at once over the session.
 * Each is a half-open socket and a descriptor; more candidates wait for the next round.
 */
export const MAX_DIALS_IN_PROGRESS = 64;
