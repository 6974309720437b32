/**
 * pruneCache: frees what a converted model no longer needs. A pull keeps the verified checkpoint
 * (about 3.9 GB for PickScore_v1) beside the converted folder so a second dtype converts without a
 * second download; once that is not wanted, this removes it.
 *
 * Removed:
 *   - downloads/<repo>/<commit>/ of a checkpoint that has a converted folder in models/ (any dtype);
 *   - leftovers of interrupted conversions (dot-named temp folders in models/ whose process is gone).
 * Kept: tokenizer downloads (a few MB), partial downloads (`.part`, the data a resumed pull continues
 * from), converted models, refs. Each checkpoint is removed while holding the locks a pull of it would
 * take, so a pull or conversion in progress is waited for, never cut off.
 */
import { lstat, readdir, rm, rmdir } from "node:fs/promises";
import path from "node:path";
import { invalidParameter } from "@pickrank/contract";
import { cacheRoot, downloadDir, isCommitSha, listModels, lockPath, modelDirName, modelsDir, repoDirName } from "./cache.ts";
import { pidAlive, withLock } from "@pickrank/contract";
import { CONVERT_DTYPES } from "../convert/convert.ts";

/** Options of pruneCache: the cache folder (default: pickrank's cache root) and a dry run that removes nothing. */
export interface PruneOptions {
  cacheDir?: string;
  /** Report what would go, remove nothing. */
  dryRun?: boolean;
  signal?: AbortSignal;
}

/** A path pruneCache removed (or would remove on a dry run), with the bytes it frees. */
export interface PrunedEntry {
  path: string;
  bytes: number;
  /** "checkpoint" (a converted checkpoint's download) or "temporary" (an interrupted conversion). */
  kind: "checkpoint" | "temporary";
  /** What it was, in words. */
  what: string;
}

/** What pruneCache removed and the bytes freed in all (in a dry run: what it would remove). */
export interface PruneResult {
  cacheDir: string;
  dryRun: boolean;
  removed: PrunedEntry[];
  freedBytes: number;
}

/**
 * Bytes that removing a path would free: every file under it, except symlinks and files with other
 * hard links (a checkpoint taken from the huggingface_hub cache shares its blob), which free nothing.
 * 0 when the path is gone. Never throws.
 */
export async function diskUsage(p: string): Promise<number> {
  let st: Awaited<ReturnType<typeof lstat>>;
  try {
    st = await lstat(p);
  } catch {
    return 0;
  }
  if (st.isSymbolicLink()) return 0;
  if (!st.isDirectory()) return st.nlink > 1 ? 0 : st.size;
  let total = 0;
  for (const name of await readdir(p)) total += await diskUsage(path.join(p, name));
  return total;
}

/**
 * Removes the checkpoint downloads that have a converted model and leftovers of interrupted
 * conversions, holding each checkpoint's pull locks so a pull in progress is waited for.
 * @throws BAD_INPUT for a malformed cacheDir; the pull locks' errors (ABORTED when the signal fires).
 */
export async function pruneCache(opts: PruneOptions = {}): Promise<PruneResult> {
  if (opts.cacheDir !== undefined && (typeof opts.cacheDir !== "string" || opts.cacheDir === "")) {
    throw invalidParameter("cacheDir", "a non-empty path", opts.cacheDir);
  }
  const cacheDir = path.resolve(opts.cacheDir ?? cacheRoot());
  const dryRun = Boolean(opts.dryRun);
  const removed: PrunedEntry[] = [];

  // Checkpoints with a converted folder: the folder holds everything scoring needs (graphs, tokenizer).
  const converted = new Map<string, { repo: string; commit: string }>();
  for (const m of await listModels(cacheDir)) {
    const { repo, revision } = m.manifest.source;
    if (repo && revision && isCommitSha(revision)) converted.set(`${repo}@${revision}`, { repo, commit: revision });
  }
  for (const { repo, commit } of converted.values()) {
    const dir = downloadDir(cacheDir, repo, commit);
    const take = async () => {
      const bytes = await diskUsage(dir);
      if (bytes === 0) return;
      if (!dryRun) {
        await rm(dir, { recursive: true, force: true });
        // The repo's folder goes too once no other commit is in it.
        await rmdir(path.dirname(dir)).catch(() => undefined);
      }
      removed.push({ path: dir, bytes, kind: "checkpoint", what: `${repo}@${commit.slice(0, 12)}, converted` });
    };
    if (dryRun) {
      await take();
      continue;
    }
    // The locks a pull takes to download this commit and to convert it: wait for any holder to finish.
    const locks = [
      lockPath(cacheDir, `download--${repoDirName(repo)}--${commit}`),
      ...CONVERT_DTYPES.map((d) => lockPath(cacheDir, `model--${modelDirName(repo, commit, d)}`)),
    ];
    const run = locks.reduceRight<() => Promise<void>>((inner, file) => () => withLock(file, opts.signal, inner), take);
    await run();
  }

  // Temp folders of conversions whose process is gone: `.<name>.<pid>.<hex>.tmp`.
  let names: string[] = [];
  try {
    names = await readdir(modelsDir(cacheDir));
  } catch {
    names = [];
  }
  for (const name of names) {
    const m = /^\..+\.(\d+)\.[0-9a-f]+\.tmp$/.exec(name);
    if (!m || pidAlive(Number(m[1]))) continue;
    const p = path.join(modelsDir(cacheDir), name);
    const bytes = await diskUsage(p);
    if (!dryRun) await rm(p, { recursive: true, force: true });
    removed.push({ path: p, bytes, kind: "temporary", what: "left by an interrupted conversion" });
  }

  return { cacheDir, dryRun, removed, freedBytes: removed.reduce((s, r) => s + r.bytes, 0) };
}
