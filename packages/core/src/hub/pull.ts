/**
 * pullModel: resolve a revision on the hub, download and verify the weights and the tokenizer files,
 * convert them once into a model folder in the cache, and return that folder. A second call with the
 * same repo/revision/dtype reads the cache only (no network): refs/ remembers which commit a revision
 * named, and the converted folder appears only complete (converted beside it, then renamed).
 */
import { randomBytes } from "node:crypto";
import { mkdir, rename, rm } from "node:fs/promises";
import path from "node:path";
import { convertModel } from "../convert/convert.ts";
import { PickrankError, invalidParameter, toPickrankError } from "@pickrank/contract";
import type { ModelManifest } from "../model/manifest.ts";
import {
  cacheRoot,
  checkRepoId,
  checkRevision,
  downloadDir,
  lockPath,
  modelDir,
  modelDirName,
  modelsDir,
  readRef,
  repoDirName,
  tryReadManifest,
  writeRef,
} from "./cache.ts";
import { downloadFiles, fetchRevisionInfo, readVerifiedFiles, type RepoRevisionInfo, type VerifiedFile } from "./download.ts";
import { DEFAULT_ENDPOINT, HubClient, abortedError } from "./http.ts";
import { withLock } from "@pickrank/contract";
import { envFlag, resolveHubToken } from "./token.ts";

export const DEFAULT_MODEL_REPO = "yuvalkirstain/PickScore_v1";
export const DEFAULT_TOKENIZER_REPO = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K";
export const MODEL_FILES = ["config.json", "model.safetensors"] as const;
/** Fetched when the tokenizer repo lists them; tokenizer.json alone, or vocab.json + merges.txt, suffice. */
export const TOKENIZER_FILES = ["tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"] as const;

export interface PullOptions {
  repo?: string;
  revision?: string;
  tokenizerRepo?: string;
  tokenizerRevision?: string;
  dtype?: "fp32" | "fp16";
  /** Hub URL; default $HF_ENDPOINT, else https://huggingface.co. */
  endpoint?: string;
  /**
   * Access token; default $HF_TOKEN, else huggingface-cli's saved token (see hub/token.ts); "" for
   * none. Sent only to the endpoint's origin.
   */
  token?: string;
  cacheDir?: string;
  /** Re-resolve the revision online even when a converted copy is cached. */
  refresh?: boolean;
  signal?: AbortSignal;
  /** Bytes done of the current file (download) or conversion step (`step`: text, vision, hash …). */
  onProgress?: (p: { stage: "download" | "convert"; file?: string; step?: string; done: number; total: number }) => void;
  /** Use the cache only; default true when $HF_HUB_OFFLINE is 1/true/yes/on. */
  offline?: boolean;
  /** Network tuning (tests shorten these). Defaults: 4 retries from 500 ms, 30 s for headers, 60 s idle. */
  retries?: number;
  retryDelayMs?: number;
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
}

export interface PullResult {
  dir: string;
  manifest: ModelManifest;
  /** True when the converted folder was already in the cache (nothing downloaded or converted). */
  cached: boolean;
}

function checkTokenizerSet(files: string[], repo: string, commit: string): void {
  if (files.includes("tokenizer.json") || (files.includes("vocab.json") && files.includes("merges.txt"))) return;
  throw new PickrankError(
    "DOWNLOAD_FAILED",
    `${repo}@${commit.slice(0, 12)} lists no tokenizer files we can use (${files.join(", ") || "none"}); expected tokenizer.json, or vocab.json and merges.txt`,
    { details: { repo, commit, files } },
  );
}

interface Resolved {
  repo: string;
  revision: string;
  tokenizerRepo: string;
  tokenizerRevision: string;
  dtype: "fp32" | "fp16";
  cacheDir: string;
}

function resolveOptions(opts: PullOptions): Resolved {
  const dtype = opts.dtype ?? "fp32";
  if (dtype !== "fp32" && dtype !== "fp16") throw invalidParameter("dtype", '"fp32" or "fp16"', dtype);
  if (opts.cacheDir !== undefined && (typeof opts.cacheDir !== "string" || opts.cacheDir === "")) {
    throw invalidParameter("cacheDir", "a non-empty path", opts.cacheDir);
  }
  return {
    repo: checkRepoId(opts.repo ?? DEFAULT_MODEL_REPO, "repo"),
    revision: checkRevision(opts.revision ?? "main", "revision"),
    tokenizerRepo: checkRepoId(opts.tokenizerRepo ?? DEFAULT_TOKENIZER_REPO, "tokenizerRepo"),
    tokenizerRevision: checkRevision(opts.tokenizerRevision ?? "main", "tokenizerRevision"),
    dtype,
    cacheDir: path.resolve(opts.cacheDir ?? cacheRoot()),
  };
}

/**
 * Converts verified downloads into `<cache>/models/<name>`: into a dot-named temp folder beside it,
 * then one rename, under a lock so two pulls never convert the same folder at once.
 */
async function convertIntoCache(
  r: Resolved,
  commit: string,
  files: VerifiedFile[],
  tokenizerDir: string,
  opts: PullOptions,
): Promise<PullResult> {
  const dir = modelDir(r.cacheDir, r.repo, commit, r.dtype);
  const name = modelDirName(r.repo, commit, r.dtype);
  return withLock(lockPath(r.cacheDir, `model--${name}`), opts.signal, async () => {
    const ready = await tryReadManifest(dir);
    if (ready) return { dir, manifest: ready, cached: true };
    await mkdir(modelsDir(r.cacheDir), { recursive: true });
    // A folder without a readable manifest is a leftover from an older or broken run: replace it.
    await rm(dir, { recursive: true, force: true });
    const tmp = path.join(modelsDir(r.cacheDir), `.${name}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
    try {
      await convertModel(downloadDir(r.cacheDir, r.repo, commit), {
        out: tmp,
        tokenizerDir,
        dtype: r.dtype,
        source: { repo: r.repo, revision: commit, files: files.map((f) => ({ name: f.name, size: f.size, sha256: f.sha256 })) },
        onProgress: (p) => {
          if (opts.signal?.aborted) throw abortedError(opts.signal);
          opts.onProgress?.({ stage: "convert", step: p.stage, done: p.done, total: p.total });
        },
      });
      if (opts.signal?.aborted) throw abortedError(opts.signal);
      await rename(tmp, dir);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw toPickrankError(e, "BAD_MODEL", `Converting ${r.repo}@${commit.slice(0, 12)} failed`);
    }
    const manifest = await tryReadManifest(dir);
    if (!manifest) {
      throw new PickrankError("BAD_MODEL", `The converted model in ${dir} has no readable manifest; expected pickrank.json written by the converter`, {
        details: { dir },
      });
    }
    return { dir, manifest, cached: false };
  });
}

/** HF_HUB_OFFLINE: convert from earlier verified downloads if there are some, else say what to do. */
async function pullOffline(r: Resolved, opts: PullOptions): Promise<PullResult> {
  const notCached = (what: string) =>
    new PickrankError(
      "DOWNLOAD_FAILED",
      `HF_HUB_OFFLINE is set and ${what} is not in the cache at ${r.cacheDir}; expected a model pulled earlier with the network on. ` +
        `Unset HF_HUB_OFFLINE (or pass a converted model folder with --model) and run: pickrank model pull --repo ${r.repo} --revision ${r.revision} --dtype ${r.dtype}`,
      { details: { repo: r.repo, revision: r.revision, dtype: r.dtype, cacheDir: r.cacheDir, offline: true } },
    );
  if (opts.refresh) {
    throw new PickrankError("DOWNLOAD_FAILED", `refresh needs the hub, but HF_HUB_OFFLINE is set; expected one of them, not both`, {
      details: { offline: true },
    });
  }
  const commit = await readRef(r.cacheDir, r.repo, r.revision);
  if (!commit) throw notCached(`${r.repo}@${r.revision}`);
  const files = await readVerifiedFiles(downloadDir(r.cacheDir, r.repo, commit));
  const tokCommit = await readRef(r.cacheDir, r.tokenizerRepo, r.tokenizerRevision);
  const tokDir = tokCommit ? downloadDir(r.cacheDir, r.tokenizerRepo, tokCommit) : undefined;
  const tokFiles = tokDir ? await readVerifiedFiles(tokDir) : undefined;
  if (!files || !MODEL_FILES.every((f) => files.some((v) => v.name === f)) || !tokDir || !tokFiles) {
    throw notCached(`a ${r.dtype} conversion of ${r.repo}@${r.revision} (commit ${commit.slice(0, 12)})`);
  }
  return convertIntoCache(r, commit, files.filter((f) => (MODEL_FILES as readonly string[]).includes(f.name)), tokDir, opts);
}

async function downloadRepo(
  client: HubClient,
  r: Resolved,
  info: RepoRevisionInfo,
  wanted: string[],
  opts: PullOptions,
): Promise<VerifiedFile[]> {
  const dir = downloadDir(r.cacheDir, info.repo, info.commit);
  return withLock(lockPath(r.cacheDir, `download--${repoDirName(info.repo)}--${info.commit}`), opts.signal, () =>
    downloadFiles(client, info, wanted, dir, (p) => opts.onProgress?.(p)),
  );
}

/**
 * Downloads (if needed), verifies and converts a PickScore checkpoint from the Hugging Face hub and
 * returns the converted model folder in the cache.
 */
export async function pullModel(opts: PullOptions = {}): Promise<PullResult> {
  const r = resolveOptions(opts);
  if (opts.signal?.aborted) throw abortedError(opts.signal);

  // Fast path, no network: the revision was resolved before and its conversion is complete.
  if (!opts.refresh) {
    const commit = await readRef(r.cacheDir, r.repo, r.revision);
    if (commit) {
      const dir = modelDir(r.cacheDir, r.repo, commit, r.dtype);
      const manifest = await tryReadManifest(dir);
      if (manifest) return { dir, manifest, cached: true };
    }
  }
  if (opts.offline ?? envFlag(process.env.HF_HUB_OFFLINE)) return pullOffline(r, opts);

  const token = resolveHubToken(opts.token);
  const client = new HubClient({
    endpoint: opts.endpoint ?? (process.env.HF_ENDPOINT || DEFAULT_ENDPOINT),
    token: token?.token,
    tokenSource: token?.source,
    signal: opts.signal,
    retries: opts.retries,
    retryDelayMs: opts.retryDelayMs,
    connectTimeoutMs: opts.connectTimeoutMs,
    idleTimeoutMs: opts.idleTimeoutMs,
  });

  const info = await fetchRevisionInfo(client, r.repo, r.revision);
  await writeRef(r.cacheDir, r.repo, r.revision, info.commit);
  const dir = modelDir(r.cacheDir, r.repo, info.commit, r.dtype);
  const ready = await tryReadManifest(dir);
  if (ready) return { dir, manifest: ready, cached: true };

  const files = await downloadRepo(client, r, info, [...MODEL_FILES], opts);

  const tokInfo = await fetchRevisionInfo(client, r.tokenizerRepo, r.tokenizerRevision);
  await writeRef(r.cacheDir, r.tokenizerRepo, r.tokenizerRevision, tokInfo.commit);
  const tokWanted = TOKENIZER_FILES.filter((f) => tokInfo.siblings.some((s) => s.rfilename === f));
  checkTokenizerSet(tokWanted, r.tokenizerRepo, tokInfo.commit);
  await downloadRepo(client, r, tokInfo, tokWanted, opts);

  return convertIntoCache(r, info.commit, files, downloadDir(r.cacheDir, r.tokenizerRepo, tokInfo.commit), opts);
}
