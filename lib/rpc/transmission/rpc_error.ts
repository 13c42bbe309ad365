/**
 * The error a Transmission RPC method or backend throws to answer a request with
 * Transmission's error shape: HTTP 200 and `{"result": "<message>"}`.
 *
 * @module
 */

/**
 * A request that cannot be carried out: bad arguments, an unknown torrent, something the
 * backend cannot do. Its message becomes the response's `result` string (Transmission's
 * results are lower-case sentences, e.g. `"method name not recognized"`); nothing else of it
 * (no stack) reaches the client.
 *
 * @example
 * ```ts
 * import { TransmissionRpcError } from "./rpc_error.ts";
 * const error = new TransmissionRpcError("torrent-rename-path is not supported yet");
 * console.log(error.message); // "torrent-rename-path is not supported yet"
 * ```
 */
export class TransmissionRpcError extends Error {
  /**
   * Creates the error.
   *
   * @param message The `result` string the client gets.
   * @param options Standard error options (`cause`).
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TransmissionRpcError";
  }
}
