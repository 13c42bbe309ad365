/**
 * Networking below the protocol: peer addresses (parse, format, compact forms), the TCP
 * transport, an in-memory network with per-link latency, bandwidth and loss for simulations,
 * and the process's file-descriptor budget. Import as `@shoal/shoal/net`.
 *
 * @example Two hosts on an in-memory network
 * ```ts ignore
 * import { MemoryNetwork } from "@shoal/shoal/net";
 * const net = new MemoryNetwork({ seed: 1 });
 * const listener = net.host("10.0.0.2", { latencyMs: 20 }).listen({ hostname: "::", port: 6881 });
 * const conn = await net.host("10.0.0.1").connect("10.0.0.2:6881", AbortSignal.timeout(1000));
 * ```
 *
 * @module
 */

export * from "./address.ts";
export { connDuplex, tcpTransport, type TcpTransportOptions } from "./tcp_transport.ts";
export * from "./memory_transport.ts";
export * from "./descriptor_budget.ts";
