import assert from "node:assert/strict";
import { clientCode, clientName } from "../../lib/peer/client_id.ts";

const id = (prefix: string) => {
  const bytes = new Uint8Array(20).fill(0x78);
  bytes.set(new TextEncoder().encode(prefix));
  return bytes;
};

Deno.test("client id: Azureus-style ids of the clients shoal meets name client and version", () => {
  assert.equal(clientName(id("-TR4060-")), "Transmission 4.0.6");
  assert.equal(clientName(id("-TR3000-")), "Transmission 3.00");
  assert.equal(clientName(id("-TR2940-")), "Transmission 2.94");
  assert.equal(clientName(id("-LT2090-")), "libtorrent 2.0.9");
  assert.equal(clientName(id("-lt0D60-")), "rTorrent 0.13.6");
  assert.equal(clientName(id("-qB4630-")), "qBittorrent 4.6.3");
  assert.equal(clientName(id("-WW0105-")), "WebTorrent 0.1.0.5");
  assert.equal(clientName(id("-SH0100-")), "shoal 0.1");
  assert.equal(clientName(id("-ZZ1200-")), "ZZ 1.2");
});

Deno.test("client id: aria2 and mainline styles", () => {
  assert.equal(clientName(id("A2-1-37-0-")), "aria2 1.37.0");
  assert.equal(clientName(id("M7-4-2--")), "BitTorrent 7.4.2");
});

Deno.test("client id: anything else is its printable first bytes; control bytes never print", () => {
  assert.equal(clientName(id("exbc")), "exbcxxxx");
  const hostile = id("-TR\u001b[2J");
  assert.equal(clientName(hostile), "-TR.[2Jx");
  assert.equal(clientName(new Uint8Array(0)), "");
});

Deno.test("client code: log records keep the short code scripts grep for", () => {
  assert.equal(clientCode(id("-TR4060-")), "TR4060");
  assert.equal(clientCode(id("A2-1-37-0-")), "A2-1-37-");
  assert.equal(clientCode(id("-TR\u001b[2J")), "-TR.[2Jx");
});
