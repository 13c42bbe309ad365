/**
 * `shoal daemon`: a long-running service keeping many torrents across restarts, in one
 * session (one peer port, one DHT, shared limits), with its state in a folder and an optional
 * watch folder, controlled over Transmission's RPC (`transmission-remote`, GUIs).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { mse, Session } from "../mod.ts";
import { managerBackend, StateStore, TorrentManager, WatchFolder } from "../lib/daemon/mod.ts";
import { RPC_PATH, TransmissionRpcServer } from "../lib/rpc/mod.ts";
import { type CliIO, type Command, EXIT_OK, withUsageErrors, writeText } from "./common.ts";
import { openLogSinks } from "./log_targets.ts";
import { DAEMON_OPTIONS, daemonSettings, type DaemonValues } from "./daemon_settings.ts";

const USAGE = `Usage: shoal daemon [options]

Runs until SIGTERM or Ctrl+C, keeping every torrent it was given across restarts (a paused
one stays paused). Its state lives in one folder: settings.json (optional, the keys below
without dashes: {"port": 51413, "watch-dir": "/srv/watch"}; flags override it),
daemon.json, torrents/<hash>.json and .torrent (one record per torrent), resume/ (resume
data) and dht.dat. Torrents are added through the watch folder or over Transmission's RPC
(transmission-remote 127.0.0.1:9091 -a x.torrent; -l, -S, -s, -v, -r ...), served on
--rpc-bind:--rpc-port. Prints one line on stdout when ready, saying where RPC listens.

Options:
      --state-dir DIR     State folder (default: $XDG_DATA_HOME/shoal, else
                          ~/.local/share/shoal)
      --download-dir DIR  Where torrents are downloaded (default: <state-dir>/downloads)
      --watch-dir DIR     Add every .torrent file dropped here, then rename it .added
                          (or .invalid, with the reason logged, if it is not a torrent)
      --port N            Peer port (default: 51413; 0 picks a free one)
      --bind ADDRESS      Address to accept peers on (default: all interfaces)
      --rpc-port N        Port of the Transmission RPC server (default: 9091; 0 picks a
                          free one)
      --rpc-bind ADDRESS  Address of the RPC server (default: 127.0.0.1); any other than
                          a loopback one needs --rpc-password
      --rpc-username NAME Basic auth user name of the RPC server (with --rpc-password)
      --rpc-password PW   Basic auth password of the RPC server (default: no auth; visible
                          to other local users as a flag: prefer settings.json)
      --up-limit RATE     Upload limit for all torrents, like 500k or 2m (default: none)
      --down-limit RATE   Download limit for all torrents (default: none)
      --encryption MODE   prefer (default), require, allow or disable
      --no-dht            Do not use the DHT
      --no-lsd            Do not look for peers on the local network
      --no-pex            Do not exchange peers with peers
      --log SINK          "pretty", "jsonl:PATH" (a log file) or a module; repeatable
                          (default: one line per record on stderr)
      --log-level LEVEL   debug, info (default), warn or error
  -h, --help              Show this help

Exit codes: 0 after SIGTERM or Ctrl+C (state and resume data saved), 1 on an error, 2 on a
usage error.
`;

/** Transmission's names of the MSE policies. */
const TR_ENCRYPTION = {
  prefer: "preferred",
  require: "required",
  allow: "tolerated",
  disable: "tolerated",
} as const;

/** The `daemon` command. */
export const daemonCommand: Command = {
  summary: "Run as a service keeping many torrents (watch folder, Transmission RPC)",
  usage: USAGE,
  async run(args: string[], io: CliIO): Promise<number> {
    const { values } = withUsageErrors(
      "daemon",
      () => parseArgs({ args, options: DAEMON_OPTIONS, strict: true }),
    );
    if (values.help) {
      await writeText(io.stdout, USAGE);
      return EXIT_OK;
    }
    const settings = await daemonSettings(values as DaemonValues, {
      env: io.env ?? (() => undefined),
      cwd: io.cwd ?? Deno.cwd(),
    });
    await Deno.mkdir(settings.stateDir, { recursive: true });
    const logs = await openLogSinks(settings.logs, io);
    try {
      const session = new Session({
        downloadDir: settings.downloadDir,
        port: settings.port,
        ...(settings.bind !== undefined ? { bind: settings.bind } : {}),
        uploadLimit: settings.upLimit,
        downloadLimit: settings.downLimit,
        logSinks: logs.sinks,
        logLevel: settings.level,
        encryption: mse({ policy: settings.encryption }),
        ...(settings.dht === false
          ? {}
          : { dht: { statePath: join(settings.stateDir, "dht.dat"), bootstrap: settings.dht } }),
        ...(settings.lsd ? {} : { lsd: false }),
        ...(settings.pex ? {} : { pex: false }),
      });
      const log = session.logger;
      let manager: TorrentManager | undefined;
      let watch: WatchFolder | undefined;
      let rpc: TransmissionRpcServer | undefined;
      try {
        const store = await StateStore.open(settings.stateDir, { logger: log });
        manager = await TorrentManager.open({ session, store, downloadDir: settings.downloadDir });
        const port = await session.listen();
        if (settings.watchDir !== undefined) {
          const added = manager;
          watch = new WatchFolder({
            dir: settings.watchDir,
            add: (torrent) => added.add({ torrent }),
            logger: log,
          });
          await watch.start();
        }
        rpc = new TransmissionRpcServer(
          managerBackend(manager, {
            session,
            downloadDir: settings.downloadDir,
            stateDir: settings.stateDir,
            limits: { upload: settings.upLimit, download: settings.downLimit },
            encryption: TR_ENCRYPTION[settings.encryption],
            dht: settings.dht !== false,
            pex: settings.pex,
            lpd: settings.lsd,
          }),
          {
            hostname: settings.rpcBind,
            port: settings.rpcPort,
            logger: log,
            ...(settings.rpcAuth ?? {}),
          },
        );
        const rpcAddr = rpc.listen();
        const rpcHost = rpcAddr.hostname.includes(":") ? `[${rpcAddr.hostname}]` : rpcAddr.hostname;
        await writeText(
          io.stdout,
          `shoal daemon ready: peer port ${port}, RPC http://${rpcHost}:${rpcAddr.port}${RPC_PATH}, ` +
            `state ${settings.stateDir}, ${store.loaded.length} torrents restored` +
            `${store.setAside.length > 0 ? `, ${store.setAside.length} unusable records set aside` : ""}\n`,
        );
        await new Promise<void>((resolve) => {
          if (io.signal === undefined || io.signal.aborted) return resolve();
          io.signal.addEventListener("abort", () => resolve(), { once: true });
        });
        log.info("daemon", "Stopping");
      } finally {
        await rpc?.close();
        await watch?.stop();
        if (manager !== undefined) await manager.close();
        else await session.close();
      }
      await writeText(io.stderr, `Stopped: state and resume data saved in ${settings.stateDir}\n`);
      return EXIT_OK;
    } finally {
      await logs.close();
    }
  },
};
