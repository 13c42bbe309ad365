/**
 * BEP 10, the extension protocol: our extended handshake (`m`, `v`, `p`, `reqq`, `yourip`
 * and fields from each extension), the peer's, and routing of extended messages to the
 * registered {@linkcode PeerExtension}s by the ids each side chose.
 *
 * Unknown extended message ids (ones we never assigned) are ignored, as BEP 10 allows; an
 * extended handshake that is not a bencoded dictionary, or is larger than 64 KiB, drops the
 * peer.
 *
 * @module
 */

import { type BDict, decode, encode } from "../bencode.ts";
import { ProtocolError } from "../errors.ts";
import type { ExtensionPeer, PeerExtension } from "../types.ts";
import { parseIp } from "../net/address.ts";

/** Largest extended handshake accepted. */
export const MAX_EXTENDED_HANDSHAKE = 64 * 1024;
/** Client name and version sent as `v`. */
export const CLIENT_VERSION = "shoal 0.1.0";

/** What the extension protocol needs from its connection. */
export interface ExtensionLink {
  /** "host:port" of the peer. */
  readonly id: string;
  /** Sends an `extended` message. */
  sendExtended(id: number, payload: Uint8Array): void;
  /** Drops the peer. */
  close(error: Error): void;
}

/** Options for {@linkcode ExtensionProtocol}. */
export interface ExtensionProtocolOptions {
  /** Extensions, in order: the first gets local id 1. */
  extensions: readonly PeerExtension[];
  /** Our listening port, sent as `p` (0: not sent). */
  listenPort?: number;
  /** How many requests we queue for a peer, sent as `reqq`. */
  requestQueue?: number;
  /** Reports a handler that threw (the peer is dropped too). */
  onFault?: (extension: PeerExtension, error: unknown) => void;
}

/**
 * The extension protocol state of one connection.
 *
 * @example
 * ```ts
 * import { ExtensionProtocol } from "./extension_protocol.ts";
 * const sent: [number, Uint8Array][] = [];
 * const link = { id: "127.0.0.1:1", sendExtended: (id: number, p: Uint8Array) => void sent.push([id, p]), close() {} };
 * const ext = new ExtensionProtocol(link, { extensions: [{ name: "ut_demo", onMessage() {} }] });
 * ext.sendHandshake();
 * console.log(sent[0]![0]); // 0 (the handshake)
 * ```
 */
export class ExtensionProtocol {
  readonly #link: ExtensionLink;
  readonly #options: ExtensionProtocolOptions;
  /** Remote ids by extension name, from the peer's `m`. */
  readonly #remote = new Map<string, number>();
  #handshake: BDict = new Map();
  #received = false;
  readonly #views: ExtensionPeer[];

  /**
   * Creates the state for one connection.
   *
   * @param link The connection.
   * @param options Extensions and what to advertise.
   */
  constructor(link: ExtensionLink, options: ExtensionProtocolOptions) {
    this.#link = link;
    this.#options = options;
    this.#views = options.extensions.map((extension) => this.#view(extension));
  }

  /** The peer's extended handshake (empty until it arrives). */
  get handshake(): ReadonlyMap<string, unknown> {
    return this.#handshake;
  }

  /** Whether the peer's extended handshake has arrived. */
  get received(): boolean {
    return this.#received;
  }

  /**
   * The id the peer assigned to an extension, or 0 when it does not support it.
   *
   * @param name Extension name.
   * @returns The remote id.
   */
  remoteId(name: string): number {
    return this.#remote.get(name) ?? 0;
  }

  /**
   * Sends our extended handshake.
   *
   * @param yourIp The peer's address as we see it (sent as `yourip`), if known.
   */
  sendHandshake(yourIp?: string): void {
    const m = new Map<string, number>();
    const dict: Record<string, number | string | Uint8Array | Map<string, number>> = {};
    this.#options.extensions.forEach((extension, i) => {
      m.set(extension.name, i + 1);
      for (const [key, value] of Object.entries(extension.handshakeFields?.() ?? {})) dict[key] = value;
    });
    dict.m = m;
    dict.v = CLIENT_VERSION;
    if (this.#options.listenPort) dict.p = this.#options.listenPort;
    dict.reqq = this.#options.requestQueue ?? 500;
    const ip = yourIp === undefined ? null : parseIp(yourIp);
    if (ip !== null) dict.yourip = ip;
    this.#link.sendExtended(0, encode(dict));
  }

  /**
   * Handles one `extended` message from the peer.
   *
   * @param id The extended message id (0: handshake).
   * @param payload The payload (valid during the call only).
   * @throws {ProtocolError} for a malformed handshake.
   */
  receive(id: number, payload: Uint8Array): void {
    if (id === 0) {
      this.#receiveHandshake(payload);
      return;
    }
    const extension = this.#options.extensions[id - 1];
    if (extension === undefined) return; // an id we never assigned: ignored
    this.#run(extension, () => extension.onMessage(this.#views[id - 1]!, payload));
  }

  #receiveHandshake(payload: Uint8Array): void {
    if (payload.length > MAX_EXTENDED_HANDSHAKE) {
      throw new ProtocolError(
        `Extended handshake of ${payload.length} bytes exceeds ${MAX_EXTENDED_HANDSHAKE}`,
      );
    }
    let value;
    try {
      value = decode(payload, { maxDepth: 8, maxTokens: 10_000 });
    } catch (error) {
      throw new ProtocolError(`Malformed extended handshake: ${(error as Error).message}`, { cause: error });
    }
    if (!(value instanceof Map)) throw new ProtocolError("Extended handshake is not a dictionary");
    // Keep our own copy: the payload's buffer is reused after this call.
    this.#handshake = decode(payload.slice(), { maxDepth: 8, maxTokens: 10_000 }) as BDict;
    const m = this.#handshake.get("m");
    if (m instanceof Map) {
      for (const [name, remoteId] of m) {
        if (typeof remoteId !== "number" || !Number.isInteger(remoteId) || remoteId < 0 || remoteId > 255) {
          continue;
        }
        // A later handshake may disable (0) or move an extension.
        if (remoteId === 0) this.#remote.delete(name);
        else this.#remote.set(name, remoteId);
      }
    }
    this.#received = true;
    this.#options.extensions.forEach((extension, i) => {
      if (extension.onHandshake) this.#run(extension, () => extension.onHandshake!(this.#views[i]!));
    });
  }

  /** Tells every extension the peer has gone. */
  closed(): void {
    this.#options.extensions.forEach((extension, i) => {
      if (!extension.onClose) return;
      try {
        extension.onClose(this.#views[i]!);
      } catch (error) {
        this.#options.onFault?.(extension, error);
      }
    });
  }

  #run(extension: PeerExtension, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      if (error instanceof ProtocolError) throw error; // the extension found the peer at fault
      this.#options.onFault?.(extension, error);
      throw new ProtocolError(`Extension '${extension.name}' failed: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }

  #view(extension: PeerExtension): ExtensionPeer {
    const link = this.#link;
    const handshake = () => this.#handshake;
    const remoteId = () => this.remoteId(extension.name);
    return {
      id: link.id,
      get handshake() {
        return handshake();
      },
      get supported() {
        return remoteId() !== 0;
      },
      send(payload: Uint8Array): boolean {
        const id = remoteId();
        if (id === 0) return false;
        link.sendExtended(id, payload);
        return true;
      },
      close(reason: string): void {
        link.close(new ProtocolError(`${extension.name}: ${reason}`));
      },
    };
  }
}
