/**
 * Binding the server's address: Node's listen errors as the contract's codes, and a check that the
 * address is free before `pickrank serve` spends a model load on it.
 */
import net from "node:net";
import { PickrankError } from "@pickrank/contract";

/**
 * A listen error of Node (`EADDRINUSE`, `EACCES`, `EADDRNOTAVAIL`) as a PickrankError naming the
 * address and the flag to change: CONFLICT for a port in use, BAD_INPUT for one that cannot be bound;
 * any other error is returned as it is.
 */
export function listenError(e: unknown, host: string, port: number): unknown {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  const where = `${host}:${port}`;
  if (code === "EADDRINUSE") {
    return new PickrankError(
      "CONFLICT",
      `Expected ${where} to be free but another process listens there (another pickrank serve?); stop it or choose another --port`,
      { cause: e, details: { host, port } },
    );
  }
  if (code === "EACCES") {
    return new PickrankError("BAD_INPUT", `Cannot listen on ${where}: ports below 1024 need privileges; choose another --port`, {
      cause: e,
      details: { parameter: "--port", host, port },
    });
  }
  if (code === "EADDRNOTAVAIL") {
    return new PickrankError("BAD_INPUT", `Cannot listen on ${where}: ${host} is not an address of this machine; check --host`, {
      cause: e,
      details: { parameter: "--host", host, port },
    });
  }
  return e;
}

/**
 * Resolves when `host:port` can be bound (checked by binding and closing at once; port 0 always can);
 * rejects with listenError's codes (CONFLICT, BAD_INPUT) when it cannot. Another process may still take
 * the port between this check and the server's listen, which then fails with the same errors.
 */
export async function checkListenAddress(host: string, port: number): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", (e) => reject(listenError(e, host, port)));
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}
