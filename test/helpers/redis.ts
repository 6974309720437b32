/**
 * A real redis-server (Debian's package; `.ci/run` installs it) on a free loopback port, for the
 * queue's tests and benchmark. Started with no RDB snapshots; with `appendonly` its append-only file in
 * `dir` survives a restart on the same port (restart()). stop() ends it (SIGTERM: it flushes first).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { closedPort } from "./net.ts";

export const REDIS_SERVER = process.env["PICKRANK_REDIS_SERVER"] ?? "/usr/bin/redis-server";

/**
 * Whether to run the tests that need redis-server: when it is installed, or when PICKRANK_REQUIRE_REDIS=1
 * (`.ci/run`), where a missing one then fails them instead of skipping them.
 */
export const haveRedis = existsSync(REDIS_SERVER) || process.env["PICKRANK_REQUIRE_REDIS"] === "1";

export interface TestRedis {
  port: number;
  /** redis://[:password@]127.0.0.1:port */
  url: string;
  dir: string;
  /** With `tls`: the self-signed certificate (PEM) the server presents, to trust as a CA. */
  ca?: string;
  /** Stops the server (SIGTERM, waits for it to exit) and starts it again on the same port and folder. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts redis-server; resolves once it accepts connections. `tls`: TLS only (rediss://), with a
 * self-signed certificate for 127.0.0.1 made by the openssl command.
 */
export async function startRedis(o: { appendonly?: boolean; password?: string; tls?: boolean } = {}): Promise<TestRedis> {
  const port = await closedPort();
  const dir = await mkdtemp(path.join(os.tmpdir(), "pickrank-redis-"));
  const args = ["--bind", "127.0.0.1", "--save", "", "--dir", dir, "--appendonly", o.appendonly ? "yes" : "no"];
  let ca: string | undefined;
  if (o.tls) {
    const [key, cert] = [path.join(dir, "key.pem"), path.join(dir, "cert.pem")];
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1"].concat([
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
      ]),
      { stdio: "ignore" },
    );
    ca = await readFile(cert, "utf8");
    args.push("--port", "0", "--tls-port", String(port), "--tls-cert-file", cert, "--tls-key-file", key, "--tls-auth-clients", "no");
  } else args.push("--port", String(port));
  if (o.password !== undefined) args.push("--requirepass", o.password);
  let proc: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    const p = spawn(REDIS_SERVER, args, { stdio: ["ignore", "pipe", "pipe"] });
    proc = p;
    // A test process that ends without stop() (a timed-out hook) must not leave its server behind.
    const reap = (): void => {
      p.kill("SIGKILL");
    };
    process.once("exit", reap);
    p.once("exit", () => process.off("exit", reap));
    let out = "";
    await new Promise<void>((resolve, reject) => {
      const onData = (d: Buffer): void => {
        out += d.toString();
        if (out.includes("Ready to accept connections")) resolve();
      };
      p.stdout!.on("data", onData);
      p.stderr!.on("data", onData);
      p.on("exit", (code) => reject(new Error(`redis-server exited (${code}) before it was ready:\n${out}`)));
      p.on("error", reject);
    });
  };
  const stop = async (): Promise<void> => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise<void>((r) => p.once("exit", () => r()));
    p.kill("SIGTERM");
    await exited;
  };
  await start();
  const auth = o.password !== undefined ? `:${encodeURIComponent(o.password)}@` : "";
  return {
    port,
    url: `${o.tls ? "rediss" : "redis"}://${auth}127.0.0.1:${port}`,
    dir,
    ...(ca !== undefined ? { ca } : {}),
    restart: async () => {
      await stop();
      await start();
    },
    stop: async () => {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
