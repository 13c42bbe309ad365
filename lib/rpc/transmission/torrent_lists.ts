/**
 * The list fields of `torrent-get`: `files`, `fileStats`, `peers`, `trackers` and
 * `trackerStats`, in Transmission's shapes.
 *
 * @module
 */

import type { Bitfield } from "../../bitfield.ts";
import { scrapeUrl } from "../../tracker/http_tracker.ts";
import type { TrackerStatus } from "../../tracker/announce_tiers.ts";
import type { Metainfo } from "../../types.ts";
import type { RpcTorrentEntry } from "./backend.ts";

/**
 * Verified bytes of each file (metainfo order), from the pieces we have.
 *
 * @param meta The torrent.
 * @param have Verified pieces (null: none).
 * @returns Bytes completed per file.
 */
export function bytesCompleted(meta: Metainfo, have: Bitfield | null): number[] {
  return meta.files.map((file) => {
    if (have === null || file.length === 0) return 0;
    const end = file.offset + file.length;
    let done = 0;
    for (let p = Math.floor(file.offset / meta.pieceLength); p * meta.pieceLength < end; p++) {
      if (!have.get(p)) continue;
      const start = Math.max(file.offset, p * meta.pieceLength);
      done += Math.min(end, (p + 1) * meta.pieceLength) - start;
    }
    return done;
  });
}

/**
 * `files`: name (the path under the download folder), length and bytes completed.
 *
 * @param entry The torrent.
 * @returns One object per file.
 */
export function fileList(entry: RpcTorrentEntry): { bytesCompleted: number; length: number; name: string }[] {
  const meta = entry.metainfo;
  if (meta === null) return [];
  const done = bytesCompleted(meta, entry.torrent?.have ?? null);
  return meta.files.map((file, i) => ({
    bytesCompleted: done[i] ?? 0,
    length: file.length,
    name: file.safePath,
  }));
}

/**
 * `fileStats`: bytes completed, wanted and priority per file.
 *
 * @param entry The torrent.
 * @returns One object per file.
 */
export function fileStats(
  entry: RpcTorrentEntry,
): { bytesCompleted: number; wanted: boolean; priority: number }[] {
  const meta = entry.metainfo;
  if (meta === null) return [];
  const done = bytesCompleted(meta, entry.torrent?.have ?? null);
  return meta.files.map((_, i) => ({
    bytesCompleted: done[i] ?? 0,
    wanted: entry.wanted[i] ?? true,
    priority: entry.priorities[i] ?? 0,
  }));
}

/**
 * `peers`: one object per connected peer, with Transmission's flag letters (`flagStr`:
 * D downloading from, d interested and choked, U uploading to, u interested and choking,
 * K unchoked and not interested, ? we unchoked an uninterested peer, E encrypted, I incoming).
 *
 * @param entry The torrent.
 * @returns One object per peer.
 */
export function peerList(entry: RpcTorrentEntry): Record<string, unknown>[] {
  return (entry.torrent?.peers() ?? []).map((peer) => {
    const { amChoking, amInterested, peerChoking, peerInterested } = peer.flags;
    const colon = peer.address.lastIndexOf(":");
    const host = peer.address.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
    const encrypted = peer.encryption === "rc4";
    let flags = "";
    if (amInterested && !peerChoking) flags += "D";
    else if (amInterested) flags += "d";
    if (peerInterested && !amChoking) flags += "U";
    else if (peerInterested) flags += "u";
    if (!peerChoking && !amInterested) flags += "K";
    if (!amChoking && !peerInterested) flags += "?";
    if (encrypted) flags += "E";
    if (peer.direction === "in") flags += "I";
    return {
      address: host,
      clientName: peer.client,
      clientIsChoked: peerChoking,
      clientIsInterested: amInterested,
      flagStr: flags,
      isDownloadingFrom: amInterested && !peerChoking,
      isEncrypted: encrypted,
      isIncoming: peer.direction === "in",
      isUploadingTo: peerInterested && !amChoking,
      isUTP: peer.transport === "utp",
      peerIsChoked: amChoking,
      peerIsInterested: peerInterested,
      port: Number(peer.address.slice(colon + 1)),
      progress: peer.percent / 100,
      rateToClient: Math.round(peer.downloadRate),
      rateToPeer: Math.round(peer.uploadRate),
    };
  });
}

/**
 * `trackers`: the torrent's announce URLs by tier.
 *
 * @param entry The torrent.
 * @returns One object per tracker.
 */
export function trackerList(
  entry: RpcTorrentEntry,
): { announce: string; id: number; scrape: string; tier: number }[] {
  const tiers = entry.metainfo?.announceList ?? [];
  const out: { announce: string; id: number; scrape: string; tier: number }[] = [];
  tiers.forEach((tier, t) => {
    for (const url of tier) {
      out.push({ announce: url, id: out.length, scrape: scrapeUrl(url) ?? "", tier: t });
    }
  });
  return out;
}

/** Transmission's announce states: 0 inactive, 1 waiting, 2 queued, 3 active. */
const ANNOUNCE_STATE = { idle: 1, announcing: 3, working: 1, failed: 1, gone: 0 } as const;

/**
 * `trackerStats`: what the announcer knows of each tracker, in Transmission's shape
 * (dates in seconds, -1 for unknown counts). Scrapes are not made: their fields say so.
 *
 * @param entry The torrent.
 * @returns One object per tracker.
 */
export function trackerStats(entry: RpcTorrentEntry): Record<string, unknown>[] {
  const seconds = (ms: number | undefined) => (ms === undefined ? 0 : Math.floor(ms / 1000));
  const statuses = entry.torrent?.trackers() ?? [];
  const known: readonly TrackerStatus[] = statuses.length > 0
    ? statuses
    : trackerList(entry).map((t) => ({ url: t.announce, tier: t.tier, state: "idle", peersReceived: 0 }));
  return known.map((s, id) => {
    const host = /^[a-z]+:\/\/[^/]+/i.exec(s.url)?.[0] ?? s.url;
    return {
      announce: s.url,
      announceState: ANNOUNCE_STATE[s.state],
      downloadCount: -1,
      hasAnnounced: s.lastAnnounce !== undefined,
      hasScraped: false,
      host,
      id,
      isBackup: false,
      lastAnnouncePeerCount: s.peersReceived,
      lastAnnounceResult: s.lastError ?? (s.state === "working" ? "Success" : ""),
      lastAnnounceStartTime: 0,
      lastAnnounceSucceeded: s.state === "working",
      lastAnnounceTime: seconds(s.lastAnnounce),
      lastAnnounceTimedOut: false,
      lastScrapeResult: "",
      lastScrapeStartTime: 0,
      lastScrapeSucceeded: false,
      lastScrapeTime: 0,
      lastScrapeTimedOut: false,
      leecherCount: s.leechers ?? -1,
      nextAnnounceTime: seconds(s.nextAnnounce),
      nextScrapeTime: 0,
      scrape: scrapeUrl(s.url) ?? "",
      scrapeState: 0,
      seederCount: s.seeders ?? -1,
      sitename: "",
      tier: s.tier,
    };
  });
}
