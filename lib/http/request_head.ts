/**
 * Parsing of an HTTP/1.x request head (request line and header fields, RFC 9112) into its
 * parts, strictly enough that two parsers cannot disagree on where a request ends (no
 * line folding, no space before the colon, no conflicting lengths).
 *
 * @module
 */

import { HttpRequestError } from "./connection_input.ts";
import { latin1 } from "../net/bytes.ts";

/** A parsed request head. */
export interface RequestHead {
  /** The method, e.g. `"GET"`. */
  readonly method: string;
  /** The request target as sent (`/announce?...`, or an absolute URL). */
  readonly target: string;
  /** The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1. */
  readonly minor: 0 | 1;
  /** Header fields in order, names lower-cased, values trimmed. */
  readonly headers: readonly (readonly [string, string])[];
  /** How the body is framed. */
  readonly body: { readonly kind: "none" } | { readonly kind: "length"; readonly length: number } | {
    readonly kind: "chunked";
  };
  /** Whether the client asked to keep the connection open after this request. */
  readonly keepAlive: boolean;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const TARGET = /^[\x21-\x7e]+$/;
// deno-lint-ignore no-control-regex -- control characters are exactly what this rejects
const FIELD_VALUE_BAD = /[\x00-\x08\x0a-\x1f\x7f]/;

/**
 * Parses a request head (the bytes up to and including the empty line).
 *
 * @example
 * ```ts
 * import { parseRequestHead } from "./request_head.ts";
 * const head = parseRequestHead(new TextEncoder().encode("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"), 100);
 * console.log(head.method, head.target, head.keepAlive); // "GET" "/a" true
 * ```
 *
 * @param bytes The head.
 * @param maxHeaderCount Most header fields.
 * @returns The parts.
 * @throws {HttpRequestError} 400 when malformed, 431 with too many fields, 501 for a transfer
 * coding other than chunked, 505 for a version other than 1.0 and 1.1.
 */
export function parseRequestHead(bytes: Uint8Array, maxHeaderCount: number): RequestHead {
  const text = latin1(bytes);
  const lines = text.split("\n").map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
  let first = 0;
  // A server should ignore empty lines before the request line (RFC 9112, 2.2).
  while (first < lines.length && lines[first] === "") first++;
  const requestLine = lines[first] ?? "";
  const parts = requestLine.split(" ");
  if (parts.length !== 3) throw new HttpRequestError(400, "Malformed request line");
  const [method, target, version] = parts as [string, string, string];
  if (!TOKEN.test(method)) throw new HttpRequestError(400, "Malformed request method");
  if (!TARGET.test(target)) throw new HttpRequestError(400, "Malformed request target");
  const v = /^HTTP\/(\d)\.(\d)$/.exec(version);
  if (v === null) throw new HttpRequestError(400, "Malformed HTTP version");
  if (v[1] !== "1" || (v[2] !== "0" && v[2] !== "1")) {
    throw new HttpRequestError(505, "HTTP version not supported (only HTTP/1.0 and HTTP/1.1)");
  }
  const minor = v[2] === "1" ? 1 : 0;
  const headers: [string, string][] = [];
  for (let i = first + 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === "") break;
    if (line[0] === " " || line[0] === "\t") {
      throw new HttpRequestError(400, "Folded header lines are not allowed");
    }
    const colon = line.indexOf(":");
    if (colon <= 0) throw new HttpRequestError(400, "Malformed header line");
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) throw new HttpRequestError(400, "Malformed header name");
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    if (FIELD_VALUE_BAD.test(value)) throw new HttpRequestError(400, "Control character in a header value");
    if (headers.length >= maxHeaderCount) throw new HttpRequestError(431, "Too many header fields");
    headers.push([name.toLowerCase(), value]);
  }
  return {
    method,
    target,
    minor,
    headers,
    body: framing(headers, minor),
    keepAlive: keepAlive(headers, minor),
  };
}

function framing(headers: readonly (readonly [string, string])[], minor: 0 | 1): RequestHead["body"] {
  const lengths = headers.filter(([n]) => n === "content-length").flatMap(([, v]) => v.split(","))
    .map((v) => v.trim());
  const codings = headers.filter(([n]) => n === "transfer-encoding").flatMap(([, v]) => v.split(","))
    .map((v) => v.trim().toLowerCase()).filter((v) => v !== "");
  if (codings.length > 0) {
    if (lengths.length > 0) {
      throw new HttpRequestError(400, "Both Transfer-Encoding and Content-Length: ambiguous request");
    }
    if (minor === 0) throw new HttpRequestError(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (codings.length !== 1 || codings[0] !== "chunked") {
      throw new HttpRequestError(501, "Unsupported Transfer-Encoding (only chunked)");
    }
    return { kind: "chunked" };
  }
  if (lengths.length === 0) return { kind: "none" };
  if (lengths.some((v) => !/^\d{1,15}$/.test(v)) || new Set(lengths).size !== 1) {
    throw new HttpRequestError(400, "Invalid Content-Length");
  }
  const length = Number(lengths[0]);
  return length === 0 ? { kind: "none" } : { kind: "length", length };
}

function keepAlive(headers: readonly (readonly [string, string])[], minor: 0 | 1): boolean {
  const options = headers.filter(([n]) => n === "connection").flatMap(([, v]) => v.split(","))
    .map((v) => v.trim().toLowerCase());
  if (options.includes("close")) return false;
  return minor === 1 || options.includes("keep-alive");
}
