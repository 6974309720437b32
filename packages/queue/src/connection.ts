/**
 * The Redis connection string of `--queue`: redis://[user:password@]host[:port][/db] or rediss://… for
 * TLS (ioredis's own URL parsing, which BullMQ hands the URL to). The password is honoured and never
 * printed: every message and log line names the URL through redactRedisUrl.
 */
import { PickrankError } from "@pickrank/contract";

/** Connection settings for BullMQ's Queue, Worker, FlowProducer and QueueEvents (ioredis options with the URL). */
export interface RedisConnection {
  url: string;
  /** null: a command waits for Redis to come back instead of failing (workers and coordinator survive a Redis restart). */
  maxRetriesPerRequest: null;
  enableOfflineQueue: true;
  /** Reconnect backoff: 100 ms, 200 ms … capped at 2 s, forever (null: stop reconnecting, once closed). */
  retryStrategy: (times: number) => number | null;
  connectionName?: string;
  /** rediss:// with a certificate authority of its own (--queue-ca): the PEM text to trust. */
  tls?: { ca: string };
}

/** The URL as it may be shown: the password replaced by "***" (the user name, host, port and db kept). */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "***";
    return u.toString();
  } catch {
    return "(unparsable URL)";
  }
}

/**
 * Checks a Redis URL and returns the BullMQ connection settings for it.
 * @param option the flag that gave it (for messages), e.g. "--queue".
 * @param tls.ca PEM certificate authority to trust for rediss:// (default: Node's, plus NODE_EXTRA_CA_CERTS).
 * @throws BAD_INPUT for a string that is not a redis:// or rediss:// URL with a host, or a CA with redis://;
 *   the message shows the redacted URL.
 */
export function redisConnection(url: string, option = "--queue", tls?: { ca?: string }): RedisConnection {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new PickrankError(
      "BAD_INPUT",
      `Expected a Redis URL (redis://host:6379 or rediss://…) for ${option} but received one that does not parse`,
      {
        details: { parameter: option },
      },
    );
  }
  if ((u.protocol !== "redis:" && u.protocol !== "rediss:") || u.hostname === "") {
    throw new PickrankError(
      "BAD_INPUT",
      `Expected a Redis URL (redis://[user:password@]host[:port][/db], or rediss:// for TLS) for ${option} ` +
        `but received ${redactRedisUrl(url)}`,
      { details: { parameter: option } },
    );
  }
  const db = u.pathname.replace(/^\//, "");
  if (db !== "" && !/^\d+$/.test(db)) {
    throw new PickrankError("BAD_INPUT", `Expected a database number after the host in ${option} (like /0) but received /${db}`, {
      details: { parameter: option },
    });
  }
  const c: RedisConnection = {
    url,
    maxRetriesPerRequest: null,
    enableOfflineQueue: true,
    retryStrategy: (times) => Math.min(100 * times, 2000),
  };
  if (tls?.ca !== undefined) {
    if (u.protocol !== "rediss:")
      throw new PickrankError(
        "BAD_INPUT",
        `Expected a rediss:// URL for ${option} with a certificate authority but received ${redactRedisUrl(url)}`,
        {
          details: { parameter: option },
        },
      );
    c.tls = { ca: tls.ca };
  }
  return c;
}

/** Whether the URL asks for TLS (rediss://). */
export function usesTls(url: string): boolean {
  return url.startsWith("rediss:");
}
