/**
 * The cache layout, in one place:
 *   <cache>/refs/<owner--name>/<revision, URI-encoded>     → commit sha (text)
 *   <cache>/downloads/<owner--name>/<commit>/<file>        verified hub files (<file>.part while downloading)
 *   <cache>/downloads/<owner--name>/<commit>/.pickrank-source.json   the verified files' names, sizes, sha256
 *   <cache>/models/<owner--name>--<commit12>--<dtype>/     converted model folders (pickrank.json inside)
 *   <cache>/locks/…                                        lock files of pulls in progress
 * Dot-named entries are temporaries and never listed.
 */
import { readFile, readdir } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { invalidParameter } from "@pickrank/contract";
import { readManifest, type ModelManifest } from "../model/manifest.ts";
import { writeFileAtomic } from "@pickrank/contract";

/** `$PICKRANK_CACHE`, else `$XDG_CACHE_HOME/pickrank`, else `~/.cache/pickrank`. */
export function cacheRoot(): string {
  const explicit = process.env.PICKRANK_CACHE;
  if (explicit) return path.resolve(explicit);
  const xdg = process.env.XDG_CACHE_HOME;
  // The XDG spec says relative values are invalid and must be ignored.
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, "pickrank");
  return path.join(os.homedir(), ".cache", "pickrank");
}

// The hub's own rules: letters, digits, "-", "_", "."; no "--" or ".." (so "owner--name" is unambiguous).
const REPO_PART = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?$/;

/** Checks a repo id ("owner/name" or a bare "name"); BAD_INPUT naming the option otherwise. */
export function checkRepoId(repo: unknown, option = "repo"): string {
  const ok =
    typeof repo === "string" &&
    repo.split("/").length <= 2 &&
    repo.split("/").every((p) => REPO_PART.test(p) && !p.includes("--") && !p.includes(".."));
  if (!ok) throw invalidParameter(option, 'a Hugging Face repo id like "yuvalkirstain/PickScore_v1"', repo);
  return repo as string;
}

/** Checks a revision (branch, tag, commit sha, "refs/pr/1"); BAD_INPUT otherwise. */
export function checkRevision(rev: unknown, option = "revision"): string {
  const ok =
    typeof rev === "string" &&
    rev.length > 0 &&
    rev.length <= 255 &&
    !/[\s\\~^:?*[\]\0]/.test(rev) &&
    !rev.split("/").includes("..") &&
    !rev.startsWith("/");
  if (!ok) throw invalidParameter(option, "a branch, tag or commit sha (e.g. main)", rev);
  return rev as string;
}

export function isCommitSha(rev: string): boolean {
  return /^[0-9a-f]{40}$/.test(rev);
}

export function repoDirName(repo: string): string {
  return repo.replace("/", "--");
}

export function refPath(cacheDir: string, repo: string, revision: string): string {
  return path.join(cacheDir, "refs", repoDirName(repo), encodeURIComponent(revision));
}

export function downloadDir(cacheDir: string, repo: string, commit: string): string {
  return path.join(cacheDir, "downloads", repoDirName(repo), commit);
}

export function modelsDir(cacheDir: string): string {
  return path.join(cacheDir, "models");
}

export function modelDirName(repo: string, commit: string, dtype: string): string {
  return `${repoDirName(repo)}--${commit.slice(0, 12)}--${dtype}`;
}

export function modelDir(cacheDir: string, repo: string, commit: string, dtype: string): string {
  return path.join(modelsDir(cacheDir), modelDirName(repo, commit, dtype));
}

export function lockPath(cacheDir: string, name: string): string {
  return path.join(cacheDir, "locks", `${name}.lock`);
}

/** The commit a revision pointed to when last resolved online, or undefined. A sha is its own commit. */
export async function readRef(cacheDir: string, repo: string, revision: string): Promise<string | undefined> {
  if (isCommitSha(revision)) return revision;
  try {
    const sha = (await readFile(refPath(cacheDir, repo, revision), "utf8")).trim();
    return isCommitSha(sha) ? sha : undefined;
  } catch {
    return undefined;
  }
}

export async function writeRef(cacheDir: string, repo: string, revision: string, commit: string): Promise<void> {
  if (revision === commit) return;
  await writeFileAtomic(refPath(cacheDir, repo, revision), commit);
}

/** The manifest of a complete model folder, or undefined when it is missing or unreadable. */
export async function tryReadManifest(dir: string): Promise<ModelManifest | undefined> {
  try {
    return await readManifest(dir);
  } catch {
    return undefined;
  }
}

/**
 * The converted models in a cache, newest first (by the manifest's createdAt). Folders that are
 * incomplete or not pickrank models are skipped, not reported as errors: the cache may hold anything.
 */
export async function listModels(cacheDir: string = cacheRoot()): Promise<{ dir: string; manifest: ModelManifest }[]> {
  let names: string[];
  try {
    names = await readdir(modelsDir(cacheDir));
  } catch {
    return [];
  }
  const out: { dir: string; manifest: ModelManifest }[] = [];
  for (const name of names.sort()) {
    if (name.startsWith(".")) continue;
    const dir = path.join(modelsDir(cacheDir), name);
    const manifest = await tryReadManifest(dir);
    if (manifest) out.push({ dir, manifest });
  }
  return out.sort((a, b) => (a.manifest.createdAt < b.manifest.createdAt ? 1 : a.manifest.createdAt > b.manifest.createdAt ? -1 : 0));
}
