/**
 * Reuse of the huggingface_hub cache, so a user who ran PickScore from Python does not download its
 * 3.9 GB again. The layout huggingface_hub writes (file_download.py, `hf_hub_download`):
 *   <hub cache>/models--<owner>--<name>/refs/<revision>              → commit sha (text)
 *   <hub cache>/models--<owner>--<name>/snapshots/<commit>/<file>     → symlink to ../../blobs/<etag>
 *   <hub cache>/models--<owner>--<name>/blobs/<etag>                  the bytes; etag = sha256 for LFS
 *                                                                       files, the git blob sha1 otherwise
 * (where symlinks are not possible, Windows without developer mode, the snapshot holds plain copies).
 * The hub cache is `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else
 * `~/.cache/huggingface/hub` (huggingface_hub's constants.py; `$HUGGINGFACE_HUB_CACHE` is its older name).
 * pickrank only reads it: a file found there is verified and then hard-linked (or, across filesystems,
 * symlinked, else copied) into pickrank's own download folder; nothing in the hub cache is changed.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, link, lstat, readdir, readFile, realpath, rm, stat, symlink } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fsError, makeDir } from "@pickrank/contract";
import { isCommitSha } from "./cache.ts";

/** A file found in the hub cache's snapshot of one commit. */
export interface HfCachedFile {
  /** `snapshots/<commit>/<file>` as huggingface_hub wrote it. */
  snapshotPath: string;
  /** The file the snapshot entry resolves to (the blob, or the entry itself when it is a plain copy). */
  blobPath: string;
  /** The blob's name when the entry is a symlink into blobs/: the hub's ETag when huggingface_hub downloaded it. */
  blobName: string | undefined;
  size: number;
}

function expandHome(p: string): string {
  return p.replace(/^~(?=$|[/\\])/, os.homedir());
}

function clean(v: string | undefined): string | undefined {
  const t = v?.trim();
  return t ? t : undefined;
}

/**
 * The huggingface_hub cache folder, in huggingface_hub's order: $HF_HUB_CACHE (or the older
 * $HUGGINGFACE_HUB_CACHE), $HF_HOME/hub, $XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub.
 * Throws nothing; the folder may not exist.
 */
export function hfHubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = clean(env.HF_HUB_CACHE) ?? clean(env.HUGGINGFACE_HUB_CACHE);
  if (explicit) return path.resolve(expandHome(explicit));
  const home = clean(env.HF_HOME);
  if (home) return path.join(path.resolve(expandHome(home)), "hub");
  const xdg = clean(env.XDG_CACHE_HOME);
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), ".cache"), "huggingface", "hub");
}

/** `models--owner--name`, huggingface_hub's folder name for a model repo. */
export function hfRepoFolder(hubCache: string, repo: string): string {
  return path.join(hubCache, `models--${repo.replace("/", "--")}`);
}

/**
 * The commit a revision names in the hub cache: a sha is its own commit; a branch or tag is read from
 * refs/<revision>. Undefined when the cache never resolved it.
 */
export async function readHfRef(hubCache: string, repo: string, revision: string): Promise<string | undefined> {
  if (isCommitSha(revision)) return revision;
  try {
    const sha = (await readFile(path.join(hfRepoFolder(hubCache, repo), "refs", revision), "utf8")).trim();
    return isCommitSha(sha) ? sha : undefined;
  } catch {
    return undefined;
  }
}

/** The names of the files in a commit's snapshot (top level only, which is all pickrank fetches). */
export async function listHfSnapshot(hubCache: string, repo: string, commit: string): Promise<string[]> {
  try {
    return (await readdir(path.join(hfRepoFolder(hubCache, repo), "snapshots", commit))).sort();
  } catch {
    return [];
  }
}

/** A file of a commit's snapshot, or undefined when the hub cache does not hold it (or the link dangles). */
export async function findHfCachedFile(hubCache: string, repo: string, commit: string, file: string): Promise<HfCachedFile | undefined> {
  const snapshotPath = path.join(hfRepoFolder(hubCache, repo), "snapshots", commit, ...file.split("/"));
  try {
    const entry = await lstat(snapshotPath);
    const blobPath = entry.isSymbolicLink() ? await realpath(snapshotPath) : snapshotPath;
    const st = await stat(blobPath);
    if (!st.isFile()) return undefined;
    const inBlobs = entry.isSymbolicLink() && path.basename(path.dirname(blobPath)) === "blobs";
    return { snapshotPath, blobPath, blobName: inBlobs ? path.basename(blobPath) : undefined, size: st.size };
  } catch {
    return undefined;
  }
}

/** sha256 and git blob sha1 (sha1 of "blob <size>\0" + bytes) of a file, read once. */
export async function hashFile(file: string, size: number, signal?: AbortSignal): Promise<{ sha256: string; gitSha1: string }> {
  const sha256 = createHash("sha256");
  const sha1 = createHash("sha1").update(`blob ${size}\0`);
  for await (const chunk of createReadStream(file, signal ? { signal } : {})) {
    sha256.update(chunk as Buffer);
    sha1.update(chunk as Buffer);
  }
  return { sha256: sha256.digest("hex"), gitSha1: sha1.digest("hex") };
}

/**
 * What the blob's own name proves offline: huggingface_hub names a blob by the ETag the hub sent, the
 * sha256 of an LFS file or the git blob sha1 of a small one. Returns the check that matched, or
 * undefined when the content matches neither (the blob was altered after download).
 */
export function checkAgainstBlobName(blobName: string, h: { sha256: string; gitSha1: string }): "sha256" | "git blob sha1" | undefined {
  if (/^[0-9a-f]{64}$/.test(blobName) && blobName === h.sha256) return "sha256";
  if (/^[0-9a-f]{40}$/.test(blobName) && blobName === h.gitSha1) return "git blob sha1";
  return undefined;
}

/**
 * Puts a verified hub-cache file at `dest` without copying its bytes when it can: a hard link (same
 * filesystem), else a symlink, else a copy. Whatever was at `dest` is replaced.
 * @throws FILESYSTEM / NOT_FOUND (fsError) naming `dest` when none of the three works.
 */
export async function linkInto(blobPath: string, dest: string): Promise<"hardlink" | "symlink" | "copy"> {
  await makeDir(path.dirname(dest));
  await rm(dest, { force: true });
  try {
    await link(blobPath, dest);
    return "hardlink";
  } catch {
    // EXDEV (another filesystem), EPERM (a filesystem without hard links): try a symlink, then a copy.
  }
  try {
    await symlink(blobPath, dest);
    return "symlink";
  } catch {
    // Windows without the symlink privilege.
  }
  try {
    await copyFile(blobPath, dest);
    return "copy";
  } catch (e) {
    throw fsError(e, { action: "copy a file of the huggingface_hub cache to", path: dest });
  }
}
