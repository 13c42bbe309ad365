/**
 * Announce tokens (BEP 5): a `get_peers` answer carries a token bound to the requester's IP
 * address, and an `announce_peer` is taken only with a token we gave that address recently.
 *
 * A token is the first 8 bytes of SHA-1(IP address bytes ‖ secret). The secret is 20 random
 * bytes replaced every `rotateMs` (5 minutes); tokens made with the current or the previous
 * secret are accepted, so a token lives 5 to 10 minutes. Nothing is stored per requester.
 *
 * @module
 */

import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { parseIp } from "../net/address.ts";

/** Options for {@linkcode TokenSecrets}. */
export interface TokenSecretsOptions {
  /** Clock in ms. @default {Date.now} */
  now?: () => number;
  /** How often the secret changes, in ms. @default {5 * 60_000} */
  rotateMs?: number;
  /** Source of secrets (tests). @default 20 random bytes */
  random?: () => Uint8Array;
}

const TOKEN_LENGTH = 8;

/**
 * Makes and checks announce tokens with a rotating secret.
 *
 * @example
 * ```ts
 * import { TokenSecrets } from "./tokens.ts";
 * const tokens = new TokenSecrets();
 * const token = tokens.make("10.0.0.1");
 * console.log(tokens.check(token, "10.0.0.1"), tokens.check(token, "10.0.0.2")); // true false
 * ```
 */
export class TokenSecrets {
  readonly #now: () => number;
  readonly #rotateMs: number;
  readonly #random: () => Uint8Array;
  #current: Uint8Array;
  #previous: Uint8Array;
  #rotatedAt: number;

  /**
   * Creates the instance with a fresh secret.
   *
   * @param options Clock, rotation period, randomness.
   */
  constructor(options: TokenSecretsOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#rotateMs = options.rotateMs ?? 5 * 60_000;
    this.#random = options.random ?? (() => randomBytes(20));
    this.#current = this.#random();
    this.#previous = this.#random();
    this.#rotatedAt = this.#now();
  }

  /**
   * A token for a requester's IP address.
   *
   * @param ip The IP address literal (the port is not part of it).
   * @returns 8 bytes.
   */
  make(ip: string): Uint8Array {
    this.#rotate();
    return tokenFor(ip, this.#current);
  }

  /**
   * Whether a token is one we gave this IP address with the current or previous secret.
   *
   * @param token The token received.
   * @param ip The IP address the announce came from.
   * @returns True when valid.
   */
  check(token: Uint8Array, ip: string): boolean {
    this.#rotate();
    if (token.length !== TOKEN_LENGTH) return false;
    return timingSafeEqual(token, tokenFor(ip, this.#current)) ||
      timingSafeEqual(token, tokenFor(ip, this.#previous));
  }

  #rotate(): void {
    const now = this.#now();
    const periods = Math.floor((now - this.#rotatedAt) / this.#rotateMs);
    if (periods <= 0) return;
    // After two periods or more, neither old secret may be accepted any longer.
    this.#previous = periods === 1 ? this.#current : this.#random();
    this.#current = this.#random();
    this.#rotatedAt += periods * this.#rotateMs;
  }
}

function tokenFor(ip: string, secret: Uint8Array): Uint8Array {
  const bytes = parseIp(ip) ?? new TextEncoder().encode(ip);
  return new Uint8Array(createHash("sha1").update(bytes).update(secret).digest().subarray(0, TOKEN_LENGTH));
}
