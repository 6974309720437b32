/**
 * pullModel: resolve a revision on the hub, download and verify the weights and the tokenizer files,
 * convert them once into a model folder in the cache, and return that folder. A second call with the
 * same repo/revision/dtype reads the cache only (no network): refs/ remembers which commit a revision
 * named, and the converted folder appears only complete (converted beside it, then renamed).
 */
import { rename, rm } from "node:fs/promises";
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
import {
  downloadFiles,
  fetchRevisionInfo,
  readVerifiedFiles,
  recordVerifiedFiles,
  type HfCacheReuse,
  type RepoRevisionInfo,
  type ReusedFile,
  type VerifiedFile,
} from "./download.ts";
import { checkAgainstBlobName, findHfCachedFile, hashFile, hfHubCacheDir, linkInto, listHfSnapshot, readHfRef } from "./hf-cache.ts";
import { DEFAULT_ENDPOINT, HubClient, abortedError } from "./http.ts";
import { makeDir, tempSibling, withLock } from "@pickrank/contract";
import { envFlag, resolveHubToken } from "./token.ts";

/** The Hugging Face repo pullModel fetches by default: the PickScore_v1 CLIPModel checkpoint. */
export const DEFAULT_MODEL_REPO = "yuvalkirstain/PickScore_v1";
/** The Hugging Face repo the CLIP tokenizer files come from by default (the tokenizer PickScore uses). */
export const DEFAULT_TOKENIZER_REPO = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K";
export const MODEL_FILES = ["config.json", "model.safetensors"] as const;
/** Fetched when the tokenizer repo lists them; tokenizer.json alone, or vocab.json + merges.txt, suffice. */
export const TOKENIZER_FILES = ["tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"] as const;

/**
 * Options of pullModel: which model and tokenizer repos and revisions (default DEFAULT_MODEL_REPO,
 * DEFAULT_TOKENIZER_REPO), the weight dtype to convert to, the hub endpoint and token, the cache folder,
 * and network timeouts (ms).
 */
export interface PullOptions {
  repo?: string;
  revision?: string;
  tokenizerRepo?: string;
  tokenizerRevision?: string;
  /** Graph dtype (default "fp32"); "int8" is for the CPU (see convertModel). */
  dtype?: "fp32" | "fp16" | "int8";
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
  /**
   * The huggingface_hub cache to take files from before downloading them (see hub/hf-cache.ts);
   * default hfHubCacheDir() ($HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub); false: never look.
   */
  hfCache?: string | false;
  /** Network tuning (tests shorten these). Defaults: 4 retries from 500 ms, 30 s for headers, 60 s idle. */
  retries?: number;
  retryDelayMs?: number;
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
}

/**
 * What pullModel produced: the converted model folder and its manifest, whether it was already cached,
 * and the files reused from the huggingface_hub cache.
 */
export interface PullResult {
  dir: string;
  manifest: ModelManifest;
  /** True when the converted folder was already in the cache (nothing downloaded or converted). */
  cached: boolean;
  /** Files taken from the huggingface_hub cache instead of the network, with what was checked; absent when none. */
  reused?: ReusedFile[];
  /** Things the user should hear (a hub-cache copy that did not verify and was downloaded instead). */
  notes?: string[];
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
  dtype: "fp32" | "fp16" | "int8";
  cacheDir: string;
  /** The huggingface_hub cache to reuse, or undefined for none. */
  hfCache: string | undefined;
}

function resolveOptions(opts: PullOptions): Resolved {
  const dtype = opts.dtype ?? "fp32";
  if (dtype !== "fp32" && dtype !== "fp16" && dtype !== "int8") throw invalidParameter("dtype", '"fp32", "fp16" or "int8"', dtype);
  if (opts.cacheDir !== undefined && (typeof opts.cacheDir !== "string" || opts.cacheDir === "")) {
    throw invalidParameter("cacheDir", "a non-empty path", opts.cacheDir);
  }
  if (opts.hfCache !== undefined && opts.hfCache !== false && (typeof opts.hfCache !== "string" || opts.hfCache === "")) {
    throw invalidParameter("hfCache", "a non-empty path or false", opts.hfCache);
  }
  return {
    repo: checkRepoId(opts.repo ?? DEFAULT_MODEL_REPO, "repo"),
    revision: checkRevision(opts.revision ?? "main", "revision"),
    tokenizerRepo: checkRepoId(opts.tokenizerRepo ?? DEFAULT_TOKENIZER_REPO, "tokenizerRepo"),
    tokenizerRevision: checkRevision(opts.tokenizerRevision ?? "main", "tokenizerRevision"),
    dtype,
    cacheDir: path.resolve(opts.cacheDir ?? cacheRoot()),
    hfCache: opts.hfCache === false ? undefined : path.resolve(opts.hfCache ?? hfHubCacheDir()),
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
    await makeDir(modelsDir(r.cacheDir));
    // A folder without a readable manifest is a leftover from an older or broken run: replace it.
    await rm(dir, { recursive: true, force: true });
    const tmp = tempSibling(path.join(modelsDir(r.cacheDir), name));
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
      throw new PickrankError(
        "BAD_MODEL",
        `The converted model in ${dir} has no readable manifest; expected pickrank.json written by the converter`,
        {
          details: { dir },
        },
      );
    }
    return { dir, manifest, cached: false };
  });
}

/** What the offline path found for one repo: its commit, pickrank's download folder, the verified files. */
interface OfflineRepo {
  commit: string;
  dir: string;
  files: VerifiedFile[];
}

/** The error of an offline pull that lacks something: names the repo, the files and both caches looked in. */
function offlineMissing(r: Resolved, what: string, missing?: string): PickrankError {
  const where = `pickrank's at ${r.cacheDir}${r.hfCache ? `, huggingface_hub's at ${r.hfCache}` : ""}`;
  return new PickrankError(
    "DOWNLOAD_FAILED",
    `HF_HUB_OFFLINE is set and ${what} is not in the cache (${where})${missing ? `: ${missing}` : ""}; ` +
      `expected a model pulled earlier with the network on (by pickrank, or by huggingface_hub from Python). ` +
      `Unset HF_HUB_OFFLINE (or pass a converted model folder with --model) and run: ` +
      `pickrank model pull --repo ${r.repo} --revision ${r.revision} --dtype ${r.dtype}`,
    {
      details: {
        ...{ repo: r.repo, revision: r.revision, dtype: r.dtype, cacheDir: r.cacheDir, hfCache: r.hfCache, offline: true },
        ...(missing ? { missing } : {}),
      },
    },
  );
}

/**
 * Offline, one file of the huggingface_hub cache: hashed and checked against the name of the blob it
 * links to (the hub's ETag when huggingface_hub downloaded it), then linked into pickrank's folder.
 * @throws INTEGRITY when the bytes do not hash to the blob's name.
 */
async function reuseOffline(
  r: Resolved,
  repo: string,
  commit: string,
  name: string,
  dir: string,
  signal?: AbortSignal,
): Promise<{ file: VerifiedFile; reused: ReusedFile } | undefined> {
  const found = r.hfCache ? await findHfCachedFile(r.hfCache, repo, commit, name) : undefined;
  if (!found) return undefined;
  const h = await hashFile(found.blobPath, found.size, signal);
  const check = found.blobName ? checkAgainstBlobName(found.blobName, h) : undefined;
  if (found.blobName && !check) {
    throw new PickrankError(
      "INTEGRITY",
      `${found.snapshotPath} (blob ${found.blobPath}) does not hash to its blob name: ` +
        `sha256 ${h.sha256}, git blob sha1 ${h.gitSha1}, expected one of them to be ${found.blobName}; ` +
        `the huggingface_hub cache copy is damaged. Delete it (or unset HF_HUB_OFFLINE to download ${name} again)`,
      { details: { file: name, repo, commit, path: found.blobPath, expected: found.blobName, actual: h.sha256 } },
    );
  }
  const placed = await linkInto(found.blobPath, path.join(dir, name));
  const what = check
    ? `its ${check} matches the name huggingface_hub stored it under (the hub's ETag when it was downloaded); ` +
      `not re-checked against the hub, which HF_HUB_OFFLINE keeps us from asking`
    : "a plain copy with no blob name, so nothing could be checked offline";
  return {
    file: { name, size: found.size, sha256: h.sha256 },
    reused: {
      repo,
      commit,
      file: name,
      from: found.snapshotPath,
      verified: check ? "blob-name" : "none",
      placed,
      message: `${name} of ${repo}@${commit.slice(0, 12)} taken from the huggingface_hub cache (${found.snapshotPath}): ${what}`,
    },
  };
}

/** Offline: the commit a revision named when last resolved, by pickrank or else by huggingface_hub. */
async function offlineCommit(r: Resolved, repo: string, revision: string): Promise<string> {
  const commit = (await readRef(r.cacheDir, repo, revision)) ?? (r.hfCache ? await readHfRef(r.hfCache, repo, revision) : undefined);
  if (!commit) throw offlineMissing(r, `${repo}@${revision}`);
  return commit;
}

/**
 * Offline, one repo: the commit its revision named (pickrank's refs, else the hub cache's), the files
 * pickrank verified earlier, and the rest from the hub cache. `choose` picks the wanted files from the
 * names available; the error names what is missing.
 */
async function offlineRepo(
  r: Resolved,
  repo: string,
  revision: string,
  choose: (available: Set<string>) => { wanted: string[]; missing?: string },
  reused: ReusedFile[],
  signal?: AbortSignal,
): Promise<OfflineRepo> {
  const commit = await offlineCommit(r, repo, revision);
  const dir = downloadDir(r.cacheDir, repo, commit);
  const have = (await readVerifiedFiles(dir)) ?? [];
  const snapshot = r.hfCache ? await listHfSnapshot(r.hfCache, repo, commit) : [];
  const { wanted, missing } = choose(new Set([...have.map((f) => f.name), ...snapshot]));
  const where = `${repo}@${revision} (commit ${commit.slice(0, 12)})`;
  if (missing) throw offlineMissing(r, `what pickrank needs of ${where}`, missing);
  const files: VerifiedFile[] = [];
  const added: VerifiedFile[] = [];
  for (const name of wanted) {
    const known = have.find((f) => f.name === name);
    if (known) {
      files.push(known);
      continue;
    }
    const got = await reuseOffline(r, repo, commit, name, dir, signal);
    if (!got) {
      const holds = snapshot.length ? `the huggingface_hub snapshot holds ${snapshot.join(", ")}` : undefined;
      throw offlineMissing(r, `${name} of ${where}`, holds);
    }
    files.push(got.file);
    added.push(got.file);
    reused.push(got.reused);
  }
  if (added.length) await recordVerifiedFiles(dir, added);
  return { commit, dir, files };
}

/** "; found a, b" (sorted), or "" for none. */
function foundList(available: Set<string>): string {
  return available.size ? `; found ${[...available].sort().join(", ")}` : "";
}

function chooseModelFiles(available: Set<string>): { wanted: string[]; missing?: string } {
  const absent = MODEL_FILES.filter((f) => !available.has(f));
  if (absent.length === 0) return { wanted: [...MODEL_FILES] };
  const bin = available.has("pytorch_model.bin") ? " (pytorch_model.bin is there, but pickrank reads only model.safetensors)" : "";
  return { wanted: [], missing: `${absent.join(" and ")} missing${bin}${foundList(available)}` };
}

function chooseTokenizerFiles(available: Set<string>): { wanted: string[]; missing?: string } {
  const wanted = TOKENIZER_FILES.filter((f) => available.has(f));
  if (wanted.includes("tokenizer.json") || (wanted.includes("vocab.json") && wanted.includes("merges.txt"))) return { wanted };
  return { wanted: [], missing: `no tokenizer.json, nor vocab.json and merges.txt${foundList(available)}` };
}

/**
 * HF_HUB_OFFLINE: convert from files verified earlier, pickrank's own downloads or the huggingface_hub
 * cache's, without any network; else say exactly what is missing and where we looked.
 */
async function pullOffline(r: Resolved, opts: PullOptions): Promise<PullResult> {
  if (opts.refresh) {
    const msg = "Expected refresh or HF_HUB_OFFLINE, not both: refresh asks the hub, which HF_HUB_OFFLINE forbids";
    throw new PickrankError("BAD_INPUT", msg, {
      details: { option: "refresh", offline: true },
    });
  }
  const dir = modelDir(r.cacheDir, r.repo, await offlineCommit(r, r.repo, r.revision), r.dtype);
  const ready = await tryReadManifest(dir);
  if (ready) return { dir, manifest: ready, cached: true };
  const reused: ReusedFile[] = [];
  const model = await offlineRepo(r, r.repo, r.revision, chooseModelFiles, reused, opts.signal);
  const tok = await offlineRepo(r, r.tokenizerRepo, r.tokenizerRevision, chooseTokenizerFiles, reused, opts.signal);
  const res = await convertIntoCache(r, model.commit, model.files, tok.dir, opts);
  return { ...res, ...(reused.length ? { reused } : {}) };
}

async function downloadRepo(
  client: HubClient,
  r: Resolved,
  info: RepoRevisionInfo,
  wanted: string[],
  opts: PullOptions,
  reuse: HfCacheReuse | undefined,
): Promise<VerifiedFile[]> {
  const dir = downloadDir(r.cacheDir, info.repo, info.commit);
  return withLock(lockPath(r.cacheDir, `download--${repoDirName(info.repo)}--${info.commit}`), opts.signal, () =>
    downloadFiles(client, info, wanted, dir, (p) => opts.onProgress?.(p), reuse),
  );
}

/**
 * Downloads (if needed), verifies and converts a PickScore checkpoint from the Hugging Face hub and
 * returns the converted model folder in the cache. Files the huggingface_hub cache already holds (a
 * user who ran PickScore from Python) are taken from there instead of downloaded, after the same
 * verification (`reused` says which, and what was checked). With HF_HUB_OFFLINE (or `offline`) no
 * request is made at all. Ports huggingface_hub's `hf_hub_download` protocol (revision → commit,
 * resumable, sha256-verified files) and its cache layout (see hub/hf-cache.ts).
 * @throws BAD_INPUT (an option of the wrong shape), DOWNLOAD_FAILED (hub errors, unreachable hub, or
 * offline with something missing, named), INTEGRITY (a file that does not verify), BAD_MODEL (the
 * conversion failed), ABORTED, FILESYSTEM / NOT_FOUND.
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

  const reused: ReusedFile[] = [];
  const notes: string[] = [];
  const reuse: HfCacheReuse | undefined = r.hfCache
    ? { hubCache: r.hfCache, onReused: (f) => reused.push(f), onRejected: (m) => notes.push(m) }
    : undefined;
  const files = await downloadRepo(client, r, info, [...MODEL_FILES], opts, reuse);

  const tokInfo = await fetchRevisionInfo(client, r.tokenizerRepo, r.tokenizerRevision);
  await writeRef(r.cacheDir, r.tokenizerRepo, r.tokenizerRevision, tokInfo.commit);
  const tokWanted = TOKENIZER_FILES.filter((f) => tokInfo.siblings.some((s) => s.rfilename === f));
  checkTokenizerSet(tokWanted, r.tokenizerRepo, tokInfo.commit);
  await downloadRepo(client, r, tokInfo, tokWanted, opts, reuse);

  const res = await convertIntoCache(r, info.commit, files, downloadDir(r.cacheDir, r.tokenizerRepo, tokInfo.commit), opts);
  return { ...res, ...(reused.length ? { reused } : {}), ...(notes.length ? { notes } : {}) };
}
