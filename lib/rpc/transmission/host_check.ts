/**
 * The Host-header check against DNS rebinding, as Transmission does it
 * (`rpc-host-whitelist`): a web page on a name its owner controls can make the name point to
 * 127.0.0.1 and script a local RPC, but its requests carry that name in `Host`. Allowed:
 * an IP address (rebinding needs a name), `localhost`, the names of the allow-list
 * (`*` wildcards as Transmission), and any host when a password is required.
 *
 * @module
 */

import { isIP } from "node:net";

/**
 * The host name of a Host header value: the port and IPv6 brackets taken off, lower case,
 * a final dot dropped.
 *
 * @example
 * ```ts
 * import { hostName } from "./host_check.ts";
 * console.log(hostName("[::1]:9091"), hostName("Example.COM.:80")); // "::1" "example.com"
 * ```
 *
 * @param host The Host header value.
 * @returns The name or address.
 */
export function hostName(host: string): string {
  let name = host.trim().toLowerCase();
  if (name.startsWith("[")) {
    const end = name.indexOf("]");
    name = end < 0 ? name.slice(1) : name.slice(1, end);
  } else {
    const colon = name.lastIndexOf(":");
    if (colon >= 0 && name.indexOf(":") === colon) name = name.slice(0, colon);
  }
  return name.endsWith(".") ? name.slice(0, -1) : name;
}

/**
 * Whether a request naming `host` may be served.
 *
 * @example
 * ```ts
 * import { hostAllowed } from "./host_check.ts";
 * console.log(hostAllowed("127.0.0.1:9091", []), hostAllowed("evil.example:9091", [])); // true false
 * console.log(hostAllowed("nas.lan:9091", ["*.lan"])); // true
 * ```
 *
 * @param host The Host header value (absent: allowed, as HTTP/1.0 clients send none).
 * @param allowList Extra names; `*` matches any run of characters.
 * @returns True when allowed.
 */
export function hostAllowed(host: string | null, allowList: readonly string[]): boolean {
  if (host === null || host === "") return true;
  const name = hostName(host);
  if (name === "localhost" || name.endsWith(".localhost")) return true;
  if (isIP(name) !== 0) return true;
  return allowList.some((pattern) => wildcard(pattern.trim().toLowerCase(), name));
}

function wildcard(pattern: string, name: string): boolean {
  if (pattern === "") return false;
  const source = pattern.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*");
  return new RegExp(`^${source}$`).test(name);
}

/** Transmission's 421 page, with what to do. */
export const MISDIRECTED_MESSAGE =
  "<h1>421: Misdirected Request</h1><p>Transmission received your request, but " +
  "the hostname was unrecognized.</p><p>To fix this, choose one of the following options:<ul><li>Enable " +
  "password authentication, then any hostname is allowed.</li><li>Add the hostname you want to use to the " +
  "allow-list (the <code>hostAllowList</code> option of shoal's RPC endpoint).</li></ul></p><p>This " +
  'requirement has been added to help prevent <a href="https://en.wikipedia.org/wiki/DNS_rebinding">DNS ' +
  "Rebinding</a> attacks.</p>";
