/**
 * `servedAddresses` (what a magnet link's `x.pe` lists, issue 12 item 2): one bound address
 * gives just that address; a wildcard gives the interface addresses of the families it
 * accepts, without link-local ones, loopback only when nothing else is there.
 */

import assert from "node:assert/strict";
import { type InterfaceAddress, servedAddresses } from "../../lib/net/listen_addresses.ts";

const NICS: InterfaceAddress[] = [
  { family: "IPv4", address: "127.0.0.1" },
  { family: "IPv4", address: "192.0.2.2" },
  { family: "IPv6", address: "::1" },
  { family: "IPv6", address: "fd00::2" },
  { family: "IPv6", address: "fe80::fc:ff:fe00:1" },
  { family: "IPv4", address: "169.254.3.4" },
];

Deno.test("servedAddresses: a listener bound to one address serves that address only", () => {
  assert.deepEqual(servedAddresses("127.0.0.1", 6881, NICS), ["127.0.0.1:6881"]);
  assert.deepEqual(servedAddresses("192.0.2.2", 6881, NICS), ["192.0.2.2:6881"]);
  assert.deepEqual(servedAddresses("::1", 6881, NICS), ["[::1]:6881"]);
});

Deno.test("servedAddresses: a wildcard serves the interface addresses of its families", () => {
  assert.deepEqual(servedAddresses("0.0.0.0", 6881, NICS), ["192.0.2.2:6881"]);
  assert.deepEqual(servedAddresses("::", 6881, NICS), ["192.0.2.2:6881", "[fd00::2]:6881"]);
});

Deno.test("servedAddresses: loopback only when the machine has nothing else", () => {
  const lo: InterfaceAddress[] = [{ family: "IPv4", address: "127.0.0.1" }, {
    family: "IPv6",
    address: "::1",
  }];
  assert.deepEqual(servedAddresses("0.0.0.0", 1, lo), ["127.0.0.1:1"]);
  assert.deepEqual(servedAddresses("::", 1, lo), ["127.0.0.1:1", "[::1]:1"]);
  // Interfaces unknown (no --allow-sys): the loopback address is surely served.
  assert.deepEqual(servedAddresses("::", 1, []), ["127.0.0.1:1"]);
});
