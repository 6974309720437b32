/**
 * Helpers of the server tests: one tiny-model Scorer per test file, servers on 127.0.0.1 port 0 that
 * the file closes, the reference images as bytes, and small request helpers over fetch.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { Scorer } from "@pickrank/core";
import { referenceDir } from "../../../test/helpers/paths.ts";
import { tinyModel } from "../../../test/helpers/tiny-model.ts";
import { startServer, type PickrankServer, type ServerOptions } from "../src/index.ts";

export const IMAGE_NAMES = ["tiny_64x48.png", "gray_300x200.png", "rgba_512.png", "photo_768.jpg"] as const;

export function imagePath(name: string): string {
  return path.join(referenceDir, "images", name);
}

export async function imageBytes(name: string): Promise<Buffer> {
  return readFile(imagePath(name));
}

/** A tiny-model Scorer on the CPU (the caller disposes it). */
export async function tinyScorer(opts: { batchSize?: number } = {}): Promise<Scorer> {
  return Scorer.create({ model: await tinyModel(), device: "cpu", batchSize: opts.batchSize ?? 16, preprocessWorkers: 1 });
}

/** A server on 127.0.0.1, port 0, over `scorer`; stop it with `server.close()`. */
export async function serve(scorer: Scorer, opts: Omit<ServerOptions, "scorer"> = {}): Promise<{ server: PickrankServer; url: string }> {
  const server = await startServer({ host: "127.0.0.1", port: 0, ...opts, scorer });
  return { server, url: server.url! };
}

export interface Answer<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

/** POSTs JSON (or a string as given) and reads the JSON answer. */
export async function postJson<T = any>(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer<T>> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as T };
}

export async function getJson<T = any>(url: string, headers: Record<string, string> = {}): Promise<Answer<T>> {
  const res = await fetch(url, { headers });
  return { status: res.status, headers: res.headers, body: (await res.json()) as T };
}

/** Resolves when `cond` holds, polling every 10 ms; rejects after `ms` (a generous upper bound). */
export async function until(cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * `scorer` whose vision runs wait until `open()` is called: requests stay in flight for as long as a
 * test needs, with no timing assumption. `runs` counts the vision runs started.
 */
export function gatedScorer(scorer: Scorer): { scorer: Scorer; open: () => void; runs: () => number } {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let runs = 0;
  const proxy = new Proxy(scorer, {
    get(target, key) {
      if (key === "embedPixels") {
        return async (...args: Parameters<Scorer["embedPixels"]>) => {
          runs++;
          await gate;
          return target.embedPixels(...args);
        };
      }
      const v = Reflect.get(target, key, target) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { scorer: proxy, open: release, runs: () => runs };
}

/** A Blob of `bytes` (a copy, so that Buffers from a pool type-check as BlobPart). */
export function blobOf(bytes: Uint8Array, type: string): Blob {
  return new Blob([new Uint8Array(bytes)], { type });
}
