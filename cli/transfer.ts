/**
 * What `download`, `seed` and `share` share at run time: a session with a live progress view
 * and log output, and the loop that waits for completion, seeding goals or Ctrl+C. The
 * options are parsed in `transfer_options.ts`.
 *
 * @module
 */

import {
  type CheckProgress,
  isMagnetLink,
  type MagnetLink,
  type MetadataFetchStatus,
  type Metainfo,
  mse,
  NO_METADATA_STATUS,
  type PieceSelector,
  Session,
  ShoalError,
  type Torrent,
} from "../mod.ts";
import {
  type CliIO,
  EXIT_INTERRUPTED,
  EXIT_OK,
  formatBytes,
  printable,
  ProgressLine,
  writeText,
} from "./common.ts";
import { openLogSinks } from "./log_targets.ts";
import {
  checkingLine,
  metadataLine,
  metadataTimeoutMessage,
  noPeerSourceWarning,
  startupReport,
} from "./startup_view.ts";
import { LiveView } from "./live_view.ts";
import { dhtReport, trackerReport } from "./status_view.ts";
import { downloadSummary, seedSummary } from "./summary_view.ts";
import type { TransferSettings } from "./transfer_options.ts";

/** When to stop seeding after the download completes. */
export interface SeedGoal {
  /** Keep seeding at all. */
  seed: boolean;
  /** Stop once uploaded / size reaches this. */
  ratio?: number;
  /** Stop after this many seconds of seeding. */
  seconds?: number;
}

/** Everything one transfer needs. */
export interface TransferPlan {
  /** Command name, for messages. */
  command: string;
  /** The torrent, or a magnet link whose metadata is fetched from peers first. */
  metainfo: Metainfo | MagnetLink;
  /** Download only these files (indices as `info` numbers them). @default a magnet's `so`, else all */
  selectFiles?: readonly number[];
  /** Folder holding (or receiving) the torrent's files. */
  dir: string;
  /** Shared settings. */
  settings: TransferSettings;
  /** Piece selector. */
  selector?: PieceSelector;
  /** Seeding after completion. */
  goal: SeedGoal;
  /** Called once the torrent is running (e.g. to print a magnet link). */
  onStarted?: (torrent: Torrent, session: Session) => Promise<void>;
}

/**
 * Runs one torrent in a session until it completes (and the seeding goal is met) or the
 * user interrupts; prints progress, log records and a summary.
 *
 * @example
 * ```ts ignore
 * const code = await runTransfer({ command: "download", metainfo, dir, settings, goal: { seed: false } }, io);
 * ```
 *
 * @param plan What to run.
 * @param io Where to print; `io.signal` is Ctrl+C.
 * @returns The exit code: 0 when every piece is verified (and a seeding goal, if any, is
 * reached), 130 when interrupted (during the data check, the download or seeding alike).
 */
export async function runTransfer(plan: TransferPlan, io: CliIO): Promise<number> {
  const { settings } = plan;
  let metainfo = plan.metainfo;
  const progress = settings.quiet ? null : new ProgressLine(io);
  const logs = await openLogSinks(settings.logs, io, {
    clearLine: io.isTerminal && progress !== null,
    // Records print above the live view, which is drawn again below them (peer table included).
    ...(io.isTerminal && progress !== null ? { print: (text: string) => progress.print(text) } : {}),
  });
  let session: Session;
  try {
    session = new Session({
      downloadDir: plan.dir,
      port: settings.port,
      ...(settings.bind !== undefined ? { bind: settings.bind } : {}),
      ...(plan.selector ? { selector: plan.selector } : {}),
      maxPeersPerTorrent: settings.maxPeers,
      uploadSlots: settings.uploadSlots,
      uploadLimit: settings.upLimit,
      downloadLimit: settings.downLimit,
      logSinks: logs.sinks,
      logLevel: settings.level,
      encryption: mse({ policy: settings.encryption }),
      ...(settings.dht ? { dht: settings.dht } : {}),
      ...(settings.pex ? {} : { pex: false }),
      ...(settings.lsd ? {} : { lsd: false }),
      ...(settings.spaceCheck ? {} : { checkFreeSpace: false }),
    });
  } catch (error) {
    await logs.close();
    throw error;
  }
  let torrent: Torrent | undefined;
  const started = performance.now();
  const view = new LiveView(io, {
    progress,
    session,
    seeding: plan.goal.seed,
    peers: settings.peersView,
    records: logs.records,
  });
  const stopped = new Promise<"interrupted">((resolveStop) => {
    if (io.signal?.aborted) resolveStop("interrupted");
    io.signal?.addEventListener("abort", () => resolveStop("interrupted"), { once: true });
  });
  try {
    if (io.signal?.aborted) return 130;
    const verb = plan.command === "download" ? "Downloading" : "Seeding";
    const header = (m: Metainfo) =>
      `${verb} ${m.name} (${formatBytes(m.totalLength)}, ${m.pieceCount} pieces) ` +
      `${plan.command === "download" ? "into" : "from"} ${plan.dir}\n`;
    const magnet = isMagnetLink(metainfo) ? metainfo : null;
    await writeText(
      io.stderr,
      magnet === null
        ? header(metainfo as Metainfo)
        : `Fetching metadata for ${
          magnet.name === undefined ? magnet.infoHashHex : `${printable(magnet.name)} (${magnet.infoHashHex})`
        } from peers\n`,
    );
    await writeText(io.stderr, peerSourceWarning(plan, metainfo));
    // The start-up check and a magnet link's fetch draw on the progress line while add() runs.
    let checking: CheckProgress | undefined;
    let fetchStatus: MetadataFetchStatus = NO_METADATA_STATUS;
    const dhtNodes = () => (session.dht === null ? null : session.dht.nodeCount);
    const drawFetch = () => progress?.update(metadataLine(fetchStatus, dhtNodes()));
    const fetchTimer = magnet === null ? undefined : setInterval(drawFetch, 1000);
    if (magnet !== null) drawFetch();
    try {
      torrent = await session.add(metainfo, {
        peers: settings.peers,
        ...(settings.trackers.length > 0 ? { trackers: settings.trackers } : {}),
        ...(plan.selectFiles ? { selectFiles: plan.selectFiles } : {}),
        ...(io.signal ? { signal: io.signal } : {}),
        metadataTimeoutMs: settings.metadataTimeout * 1000,
        onMetadataStatus: (status) => {
          fetchStatus = status;
        },
        onTorrent: (added) => {
          clearInterval(fetchTimer);
          added.addEventListener("checking", (e) => {
            checking = e.detail;
            progress?.update(checkingLine(checking));
          });
        },
      });
    } catch (error) {
      clearInterval(fetchTimer);
      await progress?.done();
      if (io.signal?.aborted) {
        const during = checking !== undefined
          ? "checking data"
          : magnet !== null
          ? "fetching metadata"
          : "starting";
        await writeText(io.stderr, `Interrupted while ${during}\n`);
        return EXIT_INTERRUPTED;
      }
      if (error instanceof ShoalError && error.code === "METADATA_TIMEOUT") {
        throw new ShoalError(
          "METADATA_TIMEOUT",
          metadataTimeoutMessage(settings.metadataTimeout, fetchStatus, dhtNodes()),
          { cause: error },
        );
      }
      throw error;
    }
    clearInterval(fetchTimer);
    await progress?.done(checking === undefined ? undefined : checkingLine(finished(checking)));
    metainfo = torrent.metainfo;
    if (magnet !== null) await writeText(io.stderr, header(metainfo));
    const check = torrent.startupCheck;
    // A seed that has everything says so once, in the "Data checked: all N pieces present" line.
    const seedingAll = plan.command !== "download" && check !== undefined && check.have === check.pieceCount;
    if (check !== undefined && !seedingAll) await writeText(io.stderr, startupReport(check));
    await writeText(io.stderr, `Listening on port ${session.port}\n`);
    await plan.onStarted?.(torrent, session);
    view.attach(torrent);
    const outcome = await Promise.race([torrent.completed.then(() => "done" as const), stopped]);
    if (outcome === "interrupted") {
      await view.finish(false);
      await writeText(
        io.stderr,
        `Interrupted with ${torrent.have.count()}/${torrent.metainfo.pieceCount} pieces: resume data saved\n`,
      );
      return EXIT_INTERRUPTED;
    }
    // The last line says "seeding" only when seeding follows; a download that exits says complete.
    await view.finish(plan.goal.seed);
    await writeText(
      io.stderr,
      downloadSummary(torrent.stats(), {
        command: plan.command,
        elapsedSeconds: (performance.now() - started) / 1000,
      }),
    );
    if (plan.goal.seed) {
      const seedStart = performance.now();
      const why = await seedUntil(torrent, plan.goal, stopped, progress);
      await view.finish(false);
      await writeText(io.stderr, seedSummary(torrent.stats(), why, (performance.now() - seedStart) / 1000));
      if (why === "interrupted") return EXIT_INTERRUPTED;
    }
    return EXIT_OK;
  } catch (error) {
    await progress?.done();
    throw error;
  } finally {
    view.close();
    const report = torrent ? trackerReport(torrent) + dhtReport(session, torrent) : "";
    await session.close();
    await logs.close();
    if (report !== "" && settings.level !== "error") await writeText(io.stderr, report);
  }
}

/** The warning for a torrent with no way to find peers, or "". */
function peerSourceWarning(plan: TransferPlan, metainfo: Metainfo | MagnetLink): string {
  const { settings } = plan;
  const magnet = isMagnetLink(metainfo) ? metainfo : null;
  const own = magnet === null ? (metainfo as Metainfo).announceList.flat().length : magnet.trackers.length;
  return noPeerSourceWarning({
    trackers: own + settings.trackers.flat().length,
    peers: settings.peers.length + (magnet?.peers.length ?? 0),
    dht: settings.dht !== false,
    lsd: settings.lsd,
    private: magnet === null && (metainfo as Metainfo).private,
    serving: plan.command !== "download",
  });
}

/** The check's last progress as complete (the last piece may have been skipped, not read). */
function finished(p: CheckProgress): CheckProgress {
  return { ...p, checkedPieces: p.piecesToCheck, checkedBytes: p.bytesToCheck };
}

async function seedUntil(
  torrent: Torrent,
  goal: SeedGoal,
  stopped: Promise<"interrupted">,
  progress: ProgressLine | null,
): Promise<string> {
  const limits: string[] = [];
  if (goal.ratio !== undefined) limits.push(`ratio ${goal.ratio}`);
  if (goal.seconds !== undefined) limits.push(`${goal.seconds} s`);
  progress?.update(`Seeding until ${limits.length > 0 ? limits.join(" or ") : "Ctrl+C"}`);
  const start = Date.now();
  const size = Math.max(1, torrent.metainfo.totalLength);
  const reached = new Promise<string>((resolveGoal) => {
    const check = () => {
      const stats = torrent.stats();
      if (goal.ratio !== undefined && stats.uploaded / size >= goal.ratio) {
        resolveGoal(`--seed-ratio ${goal.ratio} reached`);
      } else if (goal.seconds !== undefined && (Date.now() - start) / 1000 >= goal.seconds) {
        resolveGoal(`--seed-time ${goal.seconds} s reached`);
      }
    };
    // The live view redraws on the same events.
    torrent.addEventListener("progress", check);
    check();
  });
  return await Promise.race([reached, stopped.then(() => "interrupted")]);
}
