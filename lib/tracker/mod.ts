/**
 * Trackers, both sides: the announcer a torrent uses (HTTP and UDP, tiers, back-off), the
 * single-tracker clients, and {@linkcode TrackerServer}, the tracker `shoal tracker` runs.
 * Import as `@shoal/shoal/tracker`.
 *
 * @example Run a tracker on loopback and print its announce URLs
 * ```ts ignore
 * import { TrackerServer } from "@shoal/shoal/tracker";
 * await using tracker = new TrackerServer({ bind: "127.0.0.1" });
 * await tracker.start();
 * console.log(tracker.announceUrls);
 * ```
 *
 * @module
 */

export * from "./server.ts";
export * from "./announcer.ts";
export * from "./udp_tracker.ts";
export { httpAnnounce, httpScrape, type HttpTrackerOptions, scrapeUrl } from "./http_tracker.ts";
export {
  type AnnounceEvent,
  type AnnounceRequest,
  type AnnounceResponse,
  type ScrapeEntry,
  type TrackerClientOptions,
  TrackerError,
  type TrackerErrorOptions,
} from "./types.ts";
