/**
 * The addresses a listener really serves, as other peers would dial them: the one address it
 * is bound to, or, bound to a wildcard (`0.0.0.0`, `::`), the machine's interface addresses of
 * the families it accepts. What a magnet link's `x.pe` may list.
 *
 * @module
 */

import { formatAddress } from "./address.ts";

/** One interface address (the fields of `Deno.NetworkInterfaceInfo` used here). */
export interface InterfaceAddress {
  /** `"IPv4"` or `"IPv6"`. */
  readonly family: "IPv4" | "IPv6";
  /** The address, without a scope id. */
  readonly address: string;
}

/**
 * The "host:port" addresses a listener bound to `hostname` serves. Bound to one address: just
 * that one. Bound to `0.0.0.0`: the IPv4 interface addresses; to `::` (dual stack): the IPv4
 * and IPv6 ones. Link-local addresses (169.254/16, fe80::/10) are left out (they need a scope
 * to dial), and loopback addresses are listed only when nothing else is, so a wildcard
 * listener on a machine without a network still gives `127.0.0.1`.
 *
 * @example
 * ```ts
 * import { servedAddresses } from "./listen_addresses.ts";
 * const nics = [{ family: "IPv4", address: "127.0.0.1" }, { family: "IPv4", address: "192.0.2.7" }] as const;
 * console.log(servedAddresses("0.0.0.0", 6881, nics)); // ["192.0.2.7:6881"]
 * console.log(servedAddresses("127.0.0.1", 6881, nics)); // ["127.0.0.1:6881"]
 * ```
 *
 * @param hostname The address the listener is bound to.
 * @param port Its port.
 * @param interfaces The machine's interface addresses (`Deno.networkInterfaces()`).
 * @returns The addresses, IPv4 first, without duplicates.
 */
export function servedAddresses(
  hostname: string,
  port: number,
  interfaces: readonly InterfaceAddress[],
): string[] {
  const families = hostname === "::" ? ["IPv4", "IPv6"] : hostname === "0.0.0.0" ? ["IPv4"] : null;
  if (families === null) return [formatAddress(hostname, port)];
  const usable = interfaces.filter((nic) => families.includes(nic.family) && !isLinkLocal(nic.address));
  const remote = usable.filter((nic) => !isLoopback(nic.address));
  const chosen = remote.length > 0 ? remote : usable.length > 0 ? usable : [{ address: "127.0.0.1" }];
  const ordered = [
    ...chosen.filter((nic) => !nic.address.includes(":")),
    ...chosen.filter((nic) => nic.address.includes(":")),
  ];
  return [...new Set(ordered.map((nic) => formatAddress(nic.address, port)))];
}

function isLoopback(address: string): boolean {
  return address.startsWith("127.") || address === "::1";
}

function isLinkLocal(address: string): boolean {
  return address.startsWith("169.254.") || /^fe[89ab][0-9a-f]:/i.test(address);
}
