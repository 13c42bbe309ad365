/**
 * One Transmission RPC request body to one response object: parse the envelope, run the
 * method, and turn every failure into Transmission's error shape (`result` is the message,
 * `arguments` empty). Nothing a client sends makes it throw.
 *
 * @module
 */

import type { Logger } from "../../log.ts";
import type { TransmissionBackend } from "./backend.ts";
import { freeSpaceMethod, portTest, sessionGet, sessionSet, sessionStats } from "./methods_session.ts";
import {
  queueMove,
  torrentAction,
  torrentAdd,
  torrentGet,
  torrentRemove,
  torrentRenamePath,
  torrentSet,
  torrentSetLocation,
} from "./methods_torrent.ts";
import { parseRpcRequest, RpcArguments } from "./request.ts";
import { TransmissionRpcError } from "./rpc_error.ts";

/** A response body: `result` is `"success"` or what went wrong. */
export interface RpcResponse {
  /** `"success"` or an error message. */
  result: string;
  /** The method's answer (empty on errors). */
  arguments: Record<string, unknown>;
  /** The request's tag, when it had a numeric one. */
  tag?: number;
}

/** What the dispatcher needs. */
export interface DispatchContext {
  /** The backend. */
  readonly backend: TransmissionBackend;
  /** The endpoint's current session id. */
  readonly sessionId: string;
  /** Where unexpected failures are logged. */
  readonly logger?: Logger | undefined;
  /** Clock, ms. @default {Date.now} */
  readonly now?: () => number;
}

type Method = (
  args: RpcArguments,
  context: Required<Omit<DispatchContext, "logger">> & { nowSeconds: number },
) => Record<string, unknown> | Promise<Record<string, unknown>>;

const METHODS: Readonly<Record<string, Method>> = {
  "session-get": (a, c) => sessionGet(a, c),
  "session-set": (a, c) => sessionSet(a, c),
  "session-stats": (a, c) => sessionStats(a, c),
  "session-close": () => {
    throw new TransmissionRpcError("session-close is not supported: stop the shoal process instead");
  },
  "free-space": (a, c) => freeSpaceMethod(a, c),
  "port-test": (a, c) => portTest(a, c),
  "blocklist-update": () => {
    throw new TransmissionRpcError("blocklist-update is not supported: shoal has no blocklist yet");
  },
  "torrent-get": (a, c) => torrentGet(a, { backend: c.backend, now: c.nowSeconds }),
  "torrent-add": (a, c) => torrentAdd(a, { backend: c.backend, now: c.nowSeconds }),
  "torrent-set": (a, c) => torrentSet(a, { backend: c.backend, now: c.nowSeconds }),
  "torrent-remove": (a, c) => torrentRemove(a, { backend: c.backend, now: c.nowSeconds }),
  "torrent-set-location": (a, c) => torrentSetLocation(a, { backend: c.backend, now: c.nowSeconds }),
  "torrent-rename-path": (a, c) => torrentRenamePath(a, { backend: c.backend, now: c.nowSeconds }),
  "queue-move-top": (a, c) => queueMove("top", a, { backend: c.backend, now: c.nowSeconds }),
  "queue-move-up": (a, c) => queueMove("up", a, { backend: c.backend, now: c.nowSeconds }),
  "queue-move-down": (a, c) => queueMove("down", a, { backend: c.backend, now: c.nowSeconds }),
  "queue-move-bottom": (a, c) => queueMove("bottom", a, { backend: c.backend, now: c.nowSeconds }),
};
for (
  const action of [
    "torrent-start",
    "torrent-start-now",
    "torrent-stop",
    "torrent-verify",
    "torrent-reannounce",
  ] as const
) {
  (METHODS as Record<string, Method>)[action] = (a, c) =>
    torrentAction(action, a, { backend: c.backend, now: c.nowSeconds });
}

/** The method names the dispatcher knows. */
export const RPC_METHODS: readonly string[] = Object.keys(METHODS).sort();

/**
 * Answers one request body.
 *
 * @example
 * ```ts ignore
 * const response = await dispatchRpc('{"method":"session-stats","tag":3}', { backend, sessionId: "x" });
 * console.log(response.result, response.tag); // "success" 3
 * ```
 *
 * @param body The request body, as text.
 * @param context Backend, session id, logger.
 * @returns The response object (never rejects).
 */
export async function dispatchRpc(body: string, context: DispatchContext): Promise<RpcResponse> {
  let tag: number | undefined;
  try {
    const request = parseRpcRequest(body);
    tag = request.tag;
    const method = Object.hasOwn(METHODS, request.method) ? METHODS[request.method] : undefined;
    if (method === undefined) throw new TransmissionRpcError("method name not recognized");
    const now = (context.now ?? Date.now)();
    const args = await method(new RpcArguments(request.method, request.arguments), {
      backend: context.backend,
      sessionId: context.sessionId,
      now: context.now ?? Date.now,
      nowSeconds: Math.floor(now / 1000),
    });
    return withTag({ result: "success", arguments: args }, tag);
  } catch (error) {
    if (!(error instanceof TransmissionRpcError)) {
      context.logger?.warn("rpc", `Transmission RPC request failed: ${String(error)}`);
    }
    const message = error instanceof Error && error.message !== "" ? error.message : "internal error";
    return withTag({ result: message, arguments: {} }, tag);
  }
}

function withTag(response: RpcResponse, tag: number | undefined): RpcResponse {
  return tag === undefined ? response : { ...response, tag };
}
