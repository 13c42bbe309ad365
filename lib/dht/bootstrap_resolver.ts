/**
 * Bootstrap nodes ("router.example:6881" or "a.b.c.d:port") resolved to IPv4 addresses to
 * ping; a name that does not resolve is warned about once and then logged at debug level.
 *
 * @module
 */

import { lookup as dnsLookup } from "node:dns/promises";
import type { Logger } from "../log.ts";
import { tryParseAddress } from "../net/address.ts";
import { parseIpv4Address } from "./krpc.ts";

/**
 * Resolves bootstrap node names for one DHT node.
 *
 * @example
 * ```ts
 * import { BootstrapResolver } from "./bootstrap_resolver.ts";
 * const resolver = new BootstrapResolver(undefined);
 * console.log(await resolver.resolve(["127.0.0.1:6881"])); // ["127.0.0.1:6881"]
 * ```
 */
export class BootstrapResolver {
  readonly #log: Logger | undefined;
  readonly #warnedHosts = new Set<string>();

  /**
   * Creates the resolver.
   *
   * @param log Where failures are logged.
   */
  constructor(log: Logger | undefined) {
    this.#log = log;
  }

  /**
   * Resolves the nodes; invalid and unresolvable ones are logged and left out.
   *
   * @param hosts "HOST:PORT" of each node.
   * @returns "a.b.c.d:port" for every IPv4 address found.
   */
  async resolve(hosts: readonly string[]): Promise<string[]> {
    const out: string[] = [];
    for (const host of hosts) {
      const direct = parseIpv4Address(host);
      if (direct !== null) {
        out.push(`${direct.host}:${direct.port}`);
        continue;
      }
      const named = tryParseAddress(host);
      if (named === null) {
        this.#log?.warn("dht", `Invalid DHT bootstrap node: ${host} (expected HOST:PORT)`);
        continue;
      }
      try {
        const found = await dnsLookup(named.hostname, { family: 4, all: true });
        for (const entry of found) out.push(`${entry.address}:${named.port}`);
      } catch (error) {
        // Warn once per node; retries (every minute while the table is small) log at debug level.
        const level = this.#warnedHosts.has(host) ? "debug" : "warn";
        if (this.#warnedHosts.size < 64) this.#warnedHosts.add(host);
        this.#log?.log(
          level,
          "dht",
          `Cannot resolve DHT bootstrap node ${host}: ${(error as Error).message}`,
        );
      }
    }
    return out;
  }
}
