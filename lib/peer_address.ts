/**
 * {@linkcode parsePeerAddress}: the strict check of a peer address given by a person (a
 * `--peer` value, `AddTorrentOptions.peers`), so that a typo is refused with a message that
 * says what is wrong instead of failing later in a dial.
 *
 * @module
 */

import { PeerAddressError } from "./errors.ts";

/** A peer address, split. */
export interface PeerAddress {
  /** IPv4 address, IPv6 address (without brackets) or host name. */
  readonly hostname: string;
  /** TCP port, 1 to 65535. */
  readonly port: number;
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$/i;
const EXPECTED = "expected HOST:PORT, such as 192.0.2.7:6881, [2001:db8::7]:6881 or peer.example:6881";

/**
 * Parses a peer address: `IPv4:PORT`, `[IPv6]:PORT` or `hostname:PORT`, with a port from 1
 * to 65535. Something that looks like an IPv4 address (only digits and dots) must be a full
 * dotted quad: `1.2.3:80` is refused rather than resolved as a name.
 *
 * @example
 * ```ts
 * import { parsePeerAddress } from "./peer_address.ts";
 * console.log(parsePeerAddress("[::1]:6881")); // { hostname: "::1", port: 6881 }
 * ```
 *
 * @param text The address as typed.
 * @returns Its host and port.
 * @throws {PeerAddressError} naming the address and what is wrong with it.
 */
export function parsePeerAddress(text: string): PeerAddress {
  const fail = (why: string): never => {
    throw new PeerAddressError(text, why);
  };
  let hostname: string;
  let portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) fail(`no ']' closes the IPv6 address (${EXPECTED})`);
    if (text[close + 1] !== ":") fail(`no port after the IPv6 address (${EXPECTED})`);
    hostname = text.slice(1, close);
    if (!/^[0-9a-f:.]+$/i.test(hostname) || !URL.canParse(`http://[${hostname}]/`)) {
      fail(`'${hostname}' is not an IPv6 address`);
    }
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) fail(`no port (${EXPECTED})`);
    hostname = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (hostname === "") fail(`no host before the port (${EXPECTED})`);
    if (hostname.includes(":")) fail(`an IPv6 address needs brackets, as in [${hostname}]:${portText}`);
    if (/^[0-9.]+$/.test(hostname)) {
      const parts = hostname.split(".");
      if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
        fail(`'${hostname}' is not an IPv4 address (four numbers from 0 to 255, such as 192.0.2.7)`);
      }
    } else if (!HOST_NAME.test(hostname)) {
      fail(`'${hostname}' is not a host name or an IP address`);
    }
  }
  if (!/^\d{1,5}$/.test(portText)) fail(`the port '${portText}' is not a number from 1 to 65535`);
  const port = Number(portText);
  if (port < 1 || port > 65535) fail(`the port ${port} is not from 1 to 65535`);
  return { hostname, port };
}
