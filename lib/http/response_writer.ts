/**
 * Writing a standard `Response` to an HTTP/1.x connection: a body that is complete at once
 * goes out with `Content-Length`; a body that is still streaming (Server-Sent Events, a
 * large download) goes out chunked (HTTP/1.1) or until the connection closes (HTTP/1.0).
 *
 * @module
 */

import { concatBytes } from "../net/bytes.ts";

/** How to write one response. */
export interface ResponseContext {
  /** The request was HEAD: headers only. */
  readonly head: boolean;
  /** The request's minor HTTP version. */
  readonly minor: 0 | 1;
  /** Whether the connection may stay open after this response. */
  readonly keepAlive: boolean;
  /** Deadline for each write, in ms. */
  readonly writeTimeoutMs: number;
  /** Aborts a streaming body (the client went away, the server is closing). */
  readonly signal: AbortSignal;
}

/** Bytes of body gathered before a response is sent chunked rather than with a length. */
export const MAX_GATHERED_BODY = 64 * 1024;

const REASONS: Readonly<Record<number, string>> = {
  100: "Continue",
  200: "OK",
  201: "Created",
  202: "Accepted",
  204: "No Content",
  206: "Partial Content",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  411: "Length Required",
  413: "Content Too Large",
  414: "URI Too Long",
  415: "Unsupported Media Type",
  416: "Range Not Satisfiable",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"]);
const encoder = new TextEncoder();
const TICK = Symbol("tick");

/**
 * Writes a response.
 *
 * @example
 * ```ts ignore
 * const { keepAlive } = await writeResponse(conn.writable.getWriter(), new Response("hi"), {
 *   head: false, minor: 1, keepAlive: true, writeTimeoutMs: 30_000, signal,
 * });
 * ```
 *
 * @param writer The connection's writer.
 * @param response The response.
 * @param context Request facts, deadline and cancellation.
 * @returns Whether the connection may serve another request.
 * @throws what a write threw (the client went away) or a write timeout; the caller closes the connection.
 */
export async function writeResponse(
  writer: WritableStreamDefaultWriter<Uint8Array>,
  response: Response,
  context: ResponseContext,
): Promise<{ keepAlive: boolean }> {
  const status = response.status;
  const bodiless = context.head || status === 204 || status === 304 || (status >= 100 && status < 200);
  let keepAlive = context.keepAlive;
  const reader = response.body?.getReader();
  const onAbort = () => void reader?.cancel(context.signal.reason).catch(ignoreCancel);
  context.signal.addEventListener("abort", onAbort, { once: true });
  try {
    let gathered: Uint8Array[] = [];
    let complete = true;
    let length = 0;
    let pending: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;
    if (reader !== undefined && bodiless) {
      await reader.cancel().catch(ignoreCancel);
    } else if (reader !== undefined) {
      complete = false;
      // Gather what the body yields at once: a fixed body completes within microtasks, a
      // stream that waits for events does not, and is sent as it comes.
      while (length <= MAX_GATHERED_BODY) {
        pending ??= reader.read();
        const result = await raceTick(pending);
        if (result === TICK) break;
        pending = undefined;
        if (result.done) {
          complete = true;
          break;
        }
        gathered.push(result.value);
        length += result.value.byteLength;
      }
    }
    const chunked = !complete && context.minor === 1;
    if (!complete && !chunked) keepAlive = false;
    const head = [`HTTP/1.${context.minor} ${status} ${response.statusText || REASONS[status] || "Unknown"}`];
    for (const [name, value] of response.headers) {
      if (!HOP_BY_HOP.has(name)) head.push(`${name}: ${value}`);
    }
    if (context.head || status === 304) {
      // No body follows; the length the handler declared (if any) describes the GET answer.
      const declared = response.headers.get("content-length");
      if (declared !== null) head.push(`content-length: ${declared}`);
    } else if (!bodiless && complete) {
      head.push(`content-length: ${length}`);
    }
    if (chunked) head.push("transfer-encoding: chunked");
    if (!keepAlive) head.push("connection: close");
    else if (context.minor === 0) head.push("connection: keep-alive");
    const headBytes = encoder.encode(head.join("\r\n") + "\r\n\r\n");
    await timedWrite(
      writer,
      concatBytes([headBytes, ...(chunked ? gathered.map(chunk) : gathered)]),
      context.writeTimeoutMs,
    );
    gathered = [];
    if (complete) return { keepAlive };
    for (;;) {
      const result = await (pending ?? reader!.read());
      pending = undefined;
      if (result.done) break;
      if (result.value.byteLength === 0) continue;
      await timedWrite(writer, chunked ? chunk(result.value) : result.value, context.writeTimeoutMs);
    }
    if (chunked) await timedWrite(writer, encoder.encode("0\r\n\r\n"), context.writeTimeoutMs);
    return { keepAlive };
  } catch (error) {
    await reader?.cancel(error).catch(ignoreCancel);
    throw error;
  } finally {
    context.signal.removeEventListener("abort", onAbort);
  }
}

function ignoreCancel(): void {
  // Cancelling a body that already failed or ended has nothing left to free.
}

function raceTick<T>(promise: Promise<T>): Promise<T | typeof TICK> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = new Promise<typeof TICK>((resolve) => (timer = setTimeout(() => resolve(TICK), 0)));
  return Promise.race([promise, tick]).finally(() => clearTimeout(timer));
}

function chunk(data: Uint8Array): Uint8Array {
  return concatBytes([encoder.encode(`${data.byteLength.toString(16)}\r\n`), data, encoder.encode("\r\n")]);
}

/**
 * Writes with a deadline; at the deadline it rejects (the caller closes the connection,
 * which ends the write).
 */
async function timedWrite(
  writer: WritableStreamDefaultWriter<Uint8Array>,
  bytes: Uint8Array,
  timeoutMs: number,
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Deno.errors.TimedOut(`Client did not read the response within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    await Promise.race([writer.write(bytes), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
