/**
 * The hub protocol as huggingface_hub speaks it:
 *  1. GET {endpoint}/api/models/{repo}/revision/{revision}?blobs=true → the commit sha and the files
 *     with their sizes, git blob ids and (LFS files) sha256.
 *  2. HEAD {endpoint}/{repo}/resolve/{commit}/{file}, following only relative redirects → X-Repo-Commit,
 *     ETag / X-Linked-Etag (the sha256 for LFS), X-Linked-Size, and for LFS a 302 Location on the CDN.
 *  3. GET the resolve URL (redirects followed, Authorization dropped off the endpoint's origin) into
 *     <file>.part, resuming with `Range: bytes=N-` (206 + Content-Range; a 200 means the server ignored
 *     the range, so start over), verify size and hash, rename into place.
 * A file in place under its final name has been verified; a .part file is resumable, across calls too.
 */
import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, readFile, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { makeDir, PickrankError, retry, SilenceTimer, writeFileAtomic } from "@pickrank/contract";
import { findHfCachedFile, hashFile, linkInto } from "./hf-cache.ts";
import { type HubClient, abortedError, formatDuration, transientError } from "./http.ts";

export interface RepoSibling {
  rfilename: string;
  size?: number | undefined;
  blobId?: string | undefined;
  lfs?: { sha256: string; size: number } | undefined;
}

export interface RepoRevisionInfo {
  repo: string;
  revision: string;
  commit: string;
  siblings: RepoSibling[];
}

export interface VerifiedFile {
  name: string;
  size: number;
  sha256: string;
}

export type DownloadProgress = (p: { stage: "download"; file: string; done: number; total: number }) => void;

const revisionInfoSchema = z.object({
  sha: z.string().regex(/^[0-9a-f]{40}$/),
  siblings: z
    .array(
      z.object({
        rfilename: z.string().min(1),
        size: z.number().int().nonnegative().optional(),
        blobId: z.string().optional(),
        lfs: z
          .object({ sha256: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int().nonnegative() })
          .nullish()
          .transform((v) => v ?? undefined),
      }),
    )
    .default([]),
});

/** Resolves a revision to its commit and file list (step 1). */
export async function fetchRevisionInfo(client: HubClient, repo: string, revision: string): Promise<RepoRevisionInfo> {
  const url = client.url(`api/models/${repo}/revision/${encodeURIComponent(revision)}?blobs=true`);
  const json = await client.withRetries(`resolve ${repo}@${revision}`, async () => {
    const { res } = await client.request("GET", url, { follow: "relative", headers: { Accept: "application/json" } });
    if (!res.ok) throw await client.statusError(res, { repo, revision, url });
    let text: string;
    try {
      text = await res.text();
    } catch (e) {
      throw transientError(`the connection to ${new URL(url).host} dropped`, { cause: e });
    }
    try {
      return JSON.parse(text) as unknown;
    } catch (e) {
      throw new PickrankError(
        "DOWNLOAD_FAILED",
        `The hub at ${client.endpointText} answered ${url} with something that is not JSON (${JSON.stringify(text.slice(0, 80))}); expected the repo's revision info. Is HF_ENDPOINT a Hugging Face hub?`,
        { cause: e, details: { url } },
      );
    }
  });
  const parsed = revisionInfoSchema.safeParse(json);
  if (!parsed.success) {
    throw new PickrankError(
      "DOWNLOAD_FAILED",
      `The hub at ${client.endpointText} answered ${url} with JSON we cannot read (${parsed.error.issues[0]?.path.join(".")}: ${parsed.error.issues[0]?.message}); expected { sha, siblings: [{ rfilename, size, lfs }] }`,
      { details: { url } },
    );
  }
  return { repo, revision, commit: parsed.data.sha, siblings: parsed.data.siblings };
}

function encodePath(file: string): string {
  return file.split("/").map(encodeURIComponent).join("/");
}

function stripEtag(v: string | null): string | undefined {
  if (!v) return undefined;
  return v.replace(/^W\//, "").replace(/^"|"$/g, "");
}

interface Expected {
  size: number;
  /** LFS content hash, when the hub gave one. */
  sha256?: string | undefined;
  /** Git blob id of a small file (sha1 of "blob <size>\0" + bytes). */
  gitSha1?: string | undefined;
}

/** HEAD the resolve URL (step 2) and merge its headers with what the api said. */
async function fileMetadata(client: HubClient, info: RepoRevisionInfo, sib: RepoSibling): Promise<Expected> {
  const url = client.url(`${info.repo}/resolve/${info.commit}/${encodePath(sib.rfilename)}`);
  return client.withRetries(`read the metadata of ${sib.rfilename} in ${info.repo}`, async () => {
    const { res } = await client.request("HEAD", url, { follow: "relative" });
    if (!(res.ok || (res.status >= 300 && res.status < 400))) {
      throw await client.statusError(res, { repo: info.repo, revision: info.revision, file: sib.rfilename, url });
    }
    await res.body?.cancel().catch(() => undefined);
    const linkedEtag = stripEtag(res.headers.get("x-linked-etag"));
    const etag = linkedEtag ?? stripEtag(res.headers.get("etag"));
    const linkedSize = Number(res.headers.get("x-linked-size") ?? res.headers.get("content-length") ?? NaN);
    const sha256 = sib.lfs?.sha256 ?? (linkedEtag && /^[0-9a-f]{64}$/.test(linkedEtag) ? linkedEtag : undefined);
    const size = sib.lfs?.size ?? sib.size ?? (Number.isFinite(linkedSize) && res.headers.has("x-linked-size") ? linkedSize : undefined);
    const gitSha1 = sha256 ? undefined : (sib.blobId ?? (etag && /^[0-9a-f]{40}$/.test(etag) ? etag : undefined));
    if (size === undefined) {
      // Without a size we cannot verify or resume; the hub always sends one, so this is not a hub.
      throw new PickrankError(
        "DOWNLOAD_FAILED",
        `The hub at ${client.endpointText} gave no size for ${sib.rfilename} in ${info.repo}; expected X-Linked-Size or the api's size field`,
        { details: { url } },
      );
    }
    return { size, sha256, gitSha1 };
  });
}

async function hashExisting(file: string, upTo: number, hashers: Hash[]): Promise<void> {
  if (upTo === 0) return;
  for await (const chunk of createReadStream(file, { start: 0, end: upTo - 1 })) for (const h of hashers) h.update(chunk as Buffer);
}

async function sizeOf(file: string): Promise<number | undefined> {
  try {
    return (await stat(file)).size;
  } catch {
    return undefined;
  }
}

interface AttemptResult {
  kind: "complete" | "dropped";
  /** Bytes written in this attempt. */
  got: number;
  sha256?: string;
  gitSha1?: string;
  error?: unknown;
}

/**
 * One GET into the .part file, resuming from its current length. Returns "dropped" on a broken
 * connection (the .part keeps what arrived), throws for HTTP errors (transient ones for 5xx).
 */
async function attemptDownload(
  client: HubClient,
  url: string,
  part: string,
  name: string,
  expected: Expected,
  ctx: { repo: string; revision: string },
  onProgress: DownloadProgress | undefined,
): Promise<AttemptResult> {
  let offset = (await sizeOf(part)) ?? 0;
  if (offset > expected.size) {
    await rm(part, { force: true });
    offset = 0;
  }
  const newHashers = () => {
    const sha256 = createHash("sha256");
    const sha1 = createHash("sha1").update(`blob ${expected.size}\0`);
    return { sha256, sha1, all: expected.gitSha1 ? [sha256, sha1] : [sha256] };
  };
  let hash = newHashers();
  // Hash what we have before asking for the rest, so the connection never idles while we read the disk.
  await hashExisting(part, offset, hash.all);
  const digests = () => ({ sha256: hash.sha256.digest("hex"), ...(expected.gitSha1 ? { gitSha1: hash.sha1.digest("hex") } : {}) });
  if (offset === expected.size && offset > 0) {
    // A complete .part from a call that stopped before the rename: verify it without a request.
    return { kind: "complete", got: 0, ...digests() };
  }
  const headers: Record<string, string> = {};
  if (offset > 0) headers.Range = `bytes=${offset}-`;
  const { res, abort } = await client.request("GET", url, { follow: "all", headers });
  if (res.status === 416) {
    // Our .part is at or past the end as the server sees it: start again from zero.
    await res.body?.cancel().catch(() => undefined);
    await rm(part, { force: true });
    return { kind: "dropped", got: 0 };
  }
  if (!res.ok) throw await client.statusError(res, { repo: ctx.repo, revision: ctx.revision, file: name, url });
  if (offset > 0) {
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get("content-range") ?? "");
    if (res.status !== 206 || !m || Number(m[1]) !== offset) {
      // The server ignored the Range header (200) or answered another range: keep the full body we
      // got and drop what we had, since bytes at the wrong offset would corrupt the file.
      if (res.status === 206) {
        await res.body?.cancel().catch(() => undefined);
        await rm(part, { force: true });
        return { kind: "dropped", got: 0 };
      }
      offset = 0;
      hash = newHashers();
    }
  }
  const hashers = hash.all;
  await makeDir(path.dirname(part));
  if (offset === 0) await rm(part, { force: true });
  const fh = await open(part, offset === 0 ? "w" : "a");
  let done = offset;
  let got = 0;
  let lastEmit = 0;
  let lastEmitAt = 0;
  onProgress?.({ stage: "download", file: name, done, total: expected.size });
  // Time this process was held up (a blocked event loop, a starved CPU) is not the server's silence.
  const idle = new SilenceTimer(client.idleTimeoutMs, () => abort(transientError(`no data for ${formatDuration(client.idleTimeoutMs)}`)));
  try {
    if (!res.body) throw transientError("empty body");
    const reader = res.body.getReader();
    idle.restart();
    for (;;) {
      const { done: end, value } = await reader.read();
      if (end) break;
      idle.restart();
      await fh.write(value);
      for (const h of hashers) h.update(value);
      done += value.length;
      got += value.length;
      const now = Date.now();
      if (done - lastEmit >= 1 << 20 || now - lastEmitAt >= 250) {
        lastEmit = done;
        lastEmitAt = now;
        onProgress?.({ stage: "download", file: name, done, total: expected.size });
      }
    }
  } catch (e) {
    idle.clear();
    await fh.close().catch(() => undefined);
    if (client.signal?.aborted) throw abortedError(client.signal);
    return { kind: "dropped", got, error: e };
  }
  idle.clear();
  await fh.sync().catch(() => undefined);
  await fh.close();
  onProgress?.({ stage: "download", file: name, done, total: expected.size });
  if (done < expected.size) return { kind: "dropped", got, error: transientError(`body ended at ${done} of ${expected.size} bytes`) };
  return { kind: "complete", got, ...digests() };
}

/** A dropped transfer, for the resume loop: how many tries in a row brought nothing new. */
type DroppedError = PickrankError<"DOWNLOAD_FAILED"> & { details: { dropped: true; fruitless: number } };

function isDropped(e: unknown): e is DroppedError {
  return e instanceof PickrankError && e.code === "DOWNLOAD_FAILED" && e.details?.dropped === true;
}

/**
 * Brings `part` to the complete file through the contract's retry(): each try resumes from the .part's
 * length; a dropped connection is retried while tries make progress, and after `retries` tries in a
 * row that bring nothing (the wait doubling from `retryDelayMs` with each, capped at 10 s), the .part
 * is kept for the next pull and DOWNLOAD_FAILED says so. HTTP-level failures of each try have their
 * own retries (HubClient.withRetries).
 */
async function transferToPart(
  client: HubClient,
  file: { url: string; part: string; name: string; expected: Expected },
  ctx: { repo: string; revision: string },
  onProgress: DownloadProgress | undefined,
): Promise<AttemptResult> {
  const { url, part, name, expected } = file;
  let fruitless = 0;
  try {
    return await retry(
      async () => {
        client.checkAborted();
        const r = await client.withRetries(`download ${name} from ${ctx.repo}`, () =>
          attemptDownload(client, url, part, name, expected, ctx, onProgress),
        );
        if (r.kind === "complete") return r;
        fruitless = r.got > 0 ? 1 : fruitless + 1;
        const why = r.error instanceof Error ? r.error.message : "connection dropped";
        throw new PickrankError("DOWNLOAD_FAILED", why, { cause: r.error, details: { dropped: true, fruitless } });
      },
      {
        retries: Number.POSITIVE_INFINITY,
        // Constant base delay; the doubling follows the fruitless tries in a row, not all tries.
        minDelayMs: client.retryDelayMs,
        factor: 1,
        ...(client.signal ? { signal: client.signal } : {}),
        shouldRetry: (e) => isDropped(e) && e.details.fruitless <= client.retries,
        retryAfterMs: (e) => (isDropped(e) ? Math.min(10_000, client.retryDelayMs * 2 ** Math.max(0, e.details.fruitless - 1)) : undefined),
      },
    );
  } catch (e) {
    if (client.signal?.aborted) throw abortedError(client.signal);
    if (!isDropped(e)) throw e;
    const have = (await sizeOf(part)) ?? 0;
    throw new PickrankError(
      "DOWNLOAD_FAILED",
      `Downloading ${name} from ${ctx.repo} kept failing (${e.message}); ` +
        `${have} of ${expected.size} bytes are kept in ${part} and the next pull resumes from there. ` +
        `Check the network connection or HF_ENDPOINT (${client.endpointText}).`,
      { cause: e.cause, details: { file: name, part, have, size: expected.size } },
    );
  }
}

/** What failed verification of a complete .part, or undefined when size and hash match. */
async function verificationProblem(
  part: string,
  r: AttemptResult,
  expected: Expected,
): Promise<{ check: string; expected: string; actual: string } | undefined> {
  const actualSize = (await sizeOf(part)) ?? 0;
  if (actualSize !== expected.size) return { check: "size", expected: `${expected.size} bytes`, actual: `${actualSize} bytes` };
  if (expected.sha256 && r.sha256 !== expected.sha256) return { check: "sha256", expected: expected.sha256, actual: r.sha256 ?? "" };
  if (expected.gitSha1 && r.gitSha1 !== expected.gitSha1) {
    return { check: "git blob sha1", expected: expected.gitSha1, actual: r.gitSha1 ?? "" };
  }
  return undefined;
}

/**
 * Downloads one file of a resolved revision into `dir`, resuming a .part left by an earlier try,
 * verifying size and hash; a corrupt result is deleted and downloaded once more from zero before
 * INTEGRITY is thrown. Returns the verified name, size and sha256.
 * @throws DOWNLOAD_FAILED (hub errors; a transfer that kept dropping, its .part kept), INTEGRITY, ABORTED.
 */
export async function downloadFile(
  client: HubClient,
  info: RepoRevisionInfo,
  sib: RepoSibling,
  dir: string,
  onProgress?: DownloadProgress,
): Promise<VerifiedFile> {
  const name = sib.rfilename;
  if (path.isAbsolute(name) || name.split("/").some((p) => p === ".." || p === "." || p === "")) {
    throw new PickrankError(
      "DOWNLOAD_FAILED",
      `The hub listed a file named ${JSON.stringify(name)} in ${info.repo}; expected a relative path inside the repo`,
    );
  }
  const final = path.join(dir, name);
  const part = `${final}.part`;
  const expected = await fileMetadata(client, info, sib);
  const url = client.url(`${info.repo}/resolve/${info.commit}/${encodePath(name)}`);
  const ctx = { repo: info.repo, revision: info.revision };
  // Two passes at most: the bad bytes of a first failure may come from an earlier, interrupted try;
  // one clean download from zero settles it.
  for (let pass = 1; ; pass++) {
    const r = await transferToPart(client, { url, part, name, expected }, ctx, onProgress);
    const problem = await verificationProblem(part, r, expected);
    if (!problem) {
      await rename(part, final);
      return { name, size: expected.size, sha256: r.sha256! };
    }
    await rm(part, { force: true });
    if (pass === 1) continue;
    throw new PickrankError(
      "INTEGRITY",
      `${name} from ${info.repo}@${info.commit.slice(0, 12)} failed verification twice: ` +
        `expected ${problem.check} ${problem.expected} but received ${problem.actual}. ` +
        `The file was deleted; try again later or report it to the repo owner.`,
      { details: { file: name, repo: info.repo, commit: info.commit, ...problem } },
    );
  }
}

const SOURCE_FILE = ".pickrank-source.json";

/** The verified files recorded for a download folder, or undefined when incomplete. */
export async function readVerifiedFiles(dir: string): Promise<VerifiedFile[] | undefined> {
  try {
    const files = JSON.parse(await readFile(path.join(dir, SOURCE_FILE), "utf8")) as VerifiedFile[];
    for (const f of files) if ((await sizeOf(path.join(dir, f.name))) !== f.size) return undefined;
    return files;
  } catch {
    return undefined;
  }
}

/**
 * Adds verified files to a download folder's record (`.pickrank-source.json`), replacing entries of
 * the same name, so later calls, offline ones too, know what is complete.
 * @throws FILESYSTEM / NOT_FOUND naming the record file.
 */
export async function recordVerifiedFiles(dir: string, files: VerifiedFile[]): Promise<void> {
  const known = (await readVerifiedFiles(dir)) ?? [];
  const merged = [...known.filter((k) => !files.some((o) => o.name === k.name)), ...files];
  await writeFileAtomic(path.join(dir, SOURCE_FILE), JSON.stringify(merged, null, 1));
}

/** A file taken from the huggingface_hub cache instead of the network. */
export interface ReusedFile {
  repo: string;
  commit: string;
  file: string;
  /** The snapshot entry it came from (`…/models--owner--name/snapshots/<commit>/<file>`). */
  from: string;
  /**
   * What was checked before use: "hub" (online: size and sha256, or git blob sha1 for a small file,
   * against the hub's metadata, as a download is), "blob-name" (offline: the bytes hash to the name
   * huggingface_hub stored them under, the hub's ETag when it downloaded them), "none" (offline, a plain
   * copy with no blob name: only found, not verified).
   */
  verified: "hub" | "blob-name" | "none";
  /** How it was put into pickrank's download folder. */
  placed: "hardlink" | "symlink" | "copy";
  /** One sentence for people: where from, what was checked. */
  message: string;
}

/** Where downloadFiles looks before the network, and who hears about what it took or refused. */
export interface HfCacheReuse {
  /** The huggingface_hub cache folder (hfHubCacheDir()). */
  hubCache: string;
  onReused?: (r: ReusedFile) => void;
  /** A hub-cache copy that did not match the hub and was left alone (the file is downloaded instead). */
  onRejected?: (message: string) => void;
}

/**
 * Online reuse of one file from the huggingface_hub cache: found in the commit's snapshot, checked like
 * a download (size and hash against the hub's metadata), then linked into `dir`. Undefined when the
 * hub cache does not hold it or it does not match (then it is downloaded as usual).
 */
async function reuseFromHfCache(
  client: HubClient,
  info: RepoRevisionInfo,
  sib: RepoSibling,
  dir: string,
  reuse: HfCacheReuse,
): Promise<VerifiedFile | undefined> {
  const found = await findHfCachedFile(reuse.hubCache, info.repo, info.commit, sib.rfilename);
  if (!found) return undefined;
  const expected = await fileMetadata(client, info, sib);
  const h = found.size === expected.size ? await hashFile(found.blobPath, found.size, client.signal) : undefined;
  const problem =
    found.size !== expected.size
      ? `size ${found.size} bytes, expected ${expected.size}`
      : expected.sha256 && h!.sha256 !== expected.sha256
        ? `sha256 ${h!.sha256}, expected ${expected.sha256}`
        : !expected.sha256 && expected.gitSha1 && h!.gitSha1 !== expected.gitSha1
          ? `git blob sha1 ${h!.gitSha1}, expected ${expected.gitSha1}`
          : undefined;
  if (problem) {
    reuse.onRejected?.(
      `${found.snapshotPath} does not match the hub (${problem}); downloading ${sib.rfilename} instead and leaving that file alone`,
    );
    return undefined;
  }
  const placed = await linkInto(found.blobPath, path.join(dir, sib.rfilename));
  const check = expected.sha256 ? "sha256" : expected.gitSha1 ? "git blob sha1" : "size";
  reuse.onReused?.({
    repo: info.repo,
    commit: info.commit,
    file: sib.rfilename,
    from: found.snapshotPath,
    verified: "hub",
    placed,
    message:
      `${sib.rfilename} of ${info.repo}@${info.commit.slice(0, 12)} taken from the huggingface_hub cache ` +
      `(${found.snapshotPath}); its ${check} matches the hub's`,
  });
  return { name: sib.rfilename, size: found.size, sha256: h!.sha256 };
}

/**
 * Downloads the wanted files of a resolved revision into `dir` (skipping those already verified there,
 * and taking those the huggingface_hub cache holds when `reuse` is given and they verify) and records
 * them in `.pickrank-source.json` so later calls, offline ones too, know what is complete.
 * @throws DOWNLOAD_FAILED (hub errors, a file the repo does not list), INTEGRITY (a file that fails
 * verification twice), ABORTED, FILESYSTEM.
 */
export async function downloadFiles(
  client: HubClient,
  info: RepoRevisionInfo,
  wanted: string[],
  dir: string,
  onProgress?: DownloadProgress,
  reuse?: HfCacheReuse,
): Promise<VerifiedFile[]> {
  const known = (await readVerifiedFiles(dir)) ?? [];
  const out: VerifiedFile[] = [];
  for (const name of wanted) {
    const sib = info.siblings.find((s) => s.rfilename === name);
    if (!sib) {
      throw new PickrankError(
        "DOWNLOAD_FAILED",
        `File ${JSON.stringify(name)} not found in ${info.repo}@${info.revision} (commit ${info.commit.slice(0, 12)}); expected the repo to list it`,
        { details: { repo: info.repo, revision: info.revision, commit: info.commit, file: name } },
      );
    }
    const have = known.find((f) => f.name === name);
    if (have && (await sizeOf(path.join(dir, name))) === have.size) {
      out.push(have);
      continue;
    }
    const fromHf = reuse ? await reuseFromHfCache(client, info, sib, dir, reuse) : undefined;
    out.push(fromHf ?? (await downloadFile(client, info, sib, dir, onProgress)));
  }
  await recordVerifiedFiles(dir, out);
  return out;
}
