/**
 * Local Service Discovery (BEP 14): finding peers of the same torrents on the local network
 * by multicast. A session runs it when its `lsd` option is on. Import as
 * `@shoal/shoal/discovery`.
 *
 * @example Format and read back an announce
 * ```ts
 * import { formatLsdAnnounce, parseLsdAnnounce } from "./mod.ts";
 * const packet = formatLsdAnnounce({ host: "239.192.152.143:6771", port: 6881, infoHashes: ["a".repeat(40)] });
 * console.log(parseLsdAnnounce(packet)?.port); // 6881
 * ```
 *
 * @module
 */

export * from "./lsd.ts";
