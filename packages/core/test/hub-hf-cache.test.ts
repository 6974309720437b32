/**
 * pullModel reusing the huggingface_hub cache of a user who ran PickScore from Python: a fake cache tree
 * laid out as huggingface_hub writes it (models--owner--name/refs/main, blobs/<etag>, snapshots/<commit>/
 * <file> symlinked to ../../blobs/<etag>) next to the fake hub. Online the files are checked like a
 * download (size and hash against the hub's metadata); offline (HF_HUB_OFFLINE=1) no request at all
 * leaves, the bytes are checked against their blob names, and what is missing is named.
 */
import { createHash } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { hfHubCacheDir } from "../src/hub/hf-cache.ts";
import { pruneCache } from "../src/hub/prune.ts";
import { pullModel, type PullOptions } from "../src/hub/pull.ts";
import { PICKSCORE_REPO, TOKENIZER_REPO, startFakeHub, type FakeHub } from "../../../test/fakes/fake-hub.ts";
import { pickrankRejection as errorOf } from "../../../test/helpers/async.ts";

const FAST: PullOptions = { retries: 2, retryDelayMs: 5, connectTimeoutMs: 5_000, idleTimeoutMs: 5_000 };

let tmp: string;
let hub: FakeHub | undefined;

beforeEach(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), "pickrank-hfcache-"));
  for (const v of [
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN",
    "HF_ENDPOINT",
    "HF_HUB_OFFLINE",
    "HF_HOME",
    "HUGGINGFACE_HUB_CACHE",
  ]) {
    vi.stubEnv(v, "");
  }
  vi.stubEnv("HF_TOKEN_PATH", path.join(tmp, "no-such-token-file"));
  vi.stubEnv("HF_HUB_CACHE", path.join(tmp, "no-hub-cache"));
});
afterEach(async () => {
  vi.unstubAllEnvs();
  await hub?.close();
  hub = undefined;
  rmSync(tmp, { recursive: true, force: true });
});

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

interface FakeCacheOptions {
  /** repo → files to put in its snapshot (default: what pickrank needs of both repos). */
  files?: Record<string, string[]>;
  /** repo → file → bytes to store instead of the served ones (a damaged or different copy). */
  replace?: Record<string, Record<string, Buffer>>;
}

/** A huggingface_hub cache tree holding the fake hub's files, as hf_hub_download lays it out. */
function fakeHfCache(root: string, h: FakeHub, o: FakeCacheOptions = {}): string {
  const files = o.files ?? {
    [PICKSCORE_REPO]: ["config.json", "model.safetensors"],
    [TOKENIZER_REPO]: Object.keys(h.files[TOKENIZER_REPO]!).filter((f) => f !== "README.md"),
  };
  for (const [repo, names] of Object.entries(files)) {
    const folder = path.join(root, `models--${repo.replace("/", "--")}`);
    const commit = h.commits[repo]!.main!;
    mkdirSync(path.join(folder, "refs"), { recursive: true });
    mkdirSync(path.join(folder, "blobs"), { recursive: true });
    mkdirSync(path.join(folder, "snapshots", commit), { recursive: true });
    writeFileSync(path.join(folder, "refs", "main"), commit);
    for (const name of names) {
      const served = h.files[repo]![name];
      const bytes = o.replace?.[repo]?.[name] ?? served?.bytes ?? Buffer.from(`not served: ${name}`);
      // The blob is named by the ETag the hub sent: sha256 for LFS files, the git blob sha1 otherwise.
      const etag = served ? (served.lfs ? served.sha256 : served.gitSha1) : sha256(bytes);
      writeFileSync(path.join(folder, "blobs", etag), bytes);
      symlinkSync(path.join("..", "..", "blobs", etag), path.join(folder, "snapshots", commit, name));
    }
  }
  return root;
}

/** Every entry under a folder with its kind and, for files, its sha256: to show a tree was left alone. */
function snapshotOf(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .map((d) => {
      const p = path.join(d.parentPath, d.name);
      const kind = lstatSync(p).isSymbolicLink() ? "link" : d.isFile() ? `file ${sha256(readFileSync(p))}` : "dir";
      return `${path.relative(dir, p)} ${kind}`;
    })
    .sort();
}

describe("hfHubCacheDir", () => {
  it("follows huggingface_hub: HF_HUB_CACHE, HF_HOME/hub, XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub", () => {
    expect(hfHubCacheDir({ HF_HUB_CACHE: "/a/hub", HF_HOME: "/b", XDG_CACHE_HOME: "/c" })).toBe("/a/hub");
    expect(hfHubCacheDir({ HUGGINGFACE_HUB_CACHE: "/old/hub", HF_HOME: "/b" })).toBe("/old/hub");
    expect(hfHubCacheDir({ HF_HOME: "/b", XDG_CACHE_HOME: "/c" })).toBe("/b/hub");
    expect(hfHubCacheDir({ XDG_CACHE_HOME: "/c" })).toBe("/c/huggingface/hub");
    expect(hfHubCacheDir({ XDG_CACHE_HOME: "relative" })).toBe(path.join(os.homedir(), ".cache", "huggingface", "hub"));
    expect(hfHubCacheDir({})).toBe(path.join(os.homedir(), ".cache", "huggingface", "hub"));
  });
});

describe("pullModel with a huggingface_hub cache", () => {
  it("online: takes the cached files after checking them against the hub, downloads nothing, changes nothing there", async () => {
    const h = (hub = await startFakeHub());
    const hfCache = fakeHfCache(path.join(tmp, "hf-hub"), h);
    vi.stubEnv("HF_HUB_CACHE", hfCache);
    const before = snapshotOf(hfCache);
    const res = await pullModel({ ...FAST, endpoint: h.url, cacheDir: path.join(tmp, "cache") });
    expect(res.cached).toBe(false);
    // The api and the HEAD for each file's metadata; no GET of any file, nothing from the CDN.
    expect(h.requests.filter((r) => r.method === "GET" && r.url.includes("/resolve/"))).toEqual([]);
    expect(h.requests.filter((r) => r.server === "cdn")).toEqual([]);
    expect(h.requests.filter((r) => r.method === "HEAD").length).toBe(res.reused!.length);
    const model = res.reused!.filter((f) => f.repo === PICKSCORE_REPO);
    expect(model.map((f) => [f.file, f.verified])).toEqual([
      ["config.json", "hub"],
      ["model.safetensors", "hub"],
    ]);
    expect(model[1]!.from).toBe(
      path.join(hfCache, "models--yuvalkirstain--PickScore_v1", "snapshots", h.commits[PICKSCORE_REPO]!.main!, "model.safetensors"),
    );
    expect(model[1]!.message).toContain("its sha256 matches the hub's");
    expect(model[0]!.message).toContain("its git blob sha1 matches the hub's");
    expect(res.reused!.filter((f) => f.repo === TOKENIZER_REPO).length).toBeGreaterThanOrEqual(2);
    const served = h.files[PICKSCORE_REPO]!["model.safetensors"]!;
    expect(res.manifest.source.files.find((f) => f.name === "model.safetensors")).toEqual({
      name: "model.safetensors",
      size: served.size,
      sha256: served.sha256,
    });
    expect(snapshotOf(hfCache)).toEqual(before);
    // Same filesystem: hard links, so the checkpoint takes no second copy on disk, and pruning it frees nothing.
    expect(model.map((f) => f.placed)).toEqual(["hardlink", "hardlink"]);
    const pruned = await pruneCache({ cacheDir: path.join(tmp, "cache"), dryRun: true });
    // Only pickrank's small record of the verified files (.pickrank-source.json) is its own.
    expect(pruned.freedBytes).toBeGreaterThan(0);
    expect(pruned.freedBytes).toBeLessThan(4096);
    expect(served.size).toBeGreaterThan(1_000_000);
  });

  it("online: a cached copy that does not match the hub is left alone and the file is downloaded, saying so", async () => {
    const h = (hub = await startFakeHub());
    const damaged = Buffer.from(h.files[PICKSCORE_REPO]!["model.safetensors"]!.bytes);
    damaged[100]! ^= 0xff;
    const hfHome = path.join(tmp, "hf-home");
    fakeHfCache(path.join(hfHome, "hub"), h, { replace: { [PICKSCORE_REPO]: { "model.safetensors": damaged } } });
    vi.stubEnv("HF_HUB_CACHE", "");
    vi.stubEnv("HF_HOME", hfHome);
    const before = snapshotOf(hfHome);
    const res = await pullModel({ ...FAST, endpoint: h.url, cacheDir: path.join(tmp, "cache") });
    const cdnGets = h.requests.filter((r) => r.server === "cdn" && r.method === "GET");
    expect(cdnGets).toHaveLength(1);
    expect(res.reused!.map((f) => f.file)).not.toContain("model.safetensors");
    expect(res.reused!.map((f) => f.file)).toContain("config.json");
    expect(res.notes).toHaveLength(1);
    const snapshotFile = /models--yuvalkirstain--PickScore_v1\/snapshots\/[0-9a-f]{40}\/model\.safetensors/.source;
    const mismatch = / does not match the hub \(sha256 [0-9a-f]{64}, expected [0-9a-f]{64}\); downloading model\.safetensors/.source;
    expect(res.notes![0]).toMatch(new RegExp(snapshotFile + mismatch));
    expect(res.manifest.source.files.find((f) => f.name === "model.safetensors")?.sha256).toBe(
      h.files[PICKSCORE_REPO]!["model.safetensors"]!.sha256,
    );
    expect(snapshotOf(hfHome)).toEqual(before);
  });

  it("hfCache: false never looks there", async () => {
    const h = (hub = await startFakeHub());
    vi.stubEnv("HF_HUB_CACHE", fakeHfCache(path.join(tmp, "hf-hub"), h));
    const res = await pullModel({ ...FAST, endpoint: h.url, cacheDir: path.join(tmp, "cache"), hfCache: false });
    expect(res.reused).toBeUndefined();
    expect(h.requests.filter((r) => r.server === "cdn" && r.method === "GET")).toHaveLength(1);
  });

  it("offline (HF_HUB_OFFLINE=1): converts from the cache with no request at all, checking each file against its blob name", async () => {
    const h = (hub = await startFakeHub());
    vi.stubEnv("HF_HUB_CACHE", fakeHfCache(path.join(tmp, "hf-hub"), h));
    vi.stubEnv("HF_ENDPOINT", h.url);
    vi.stubEnv("HF_HUB_OFFLINE", "1");
    const cacheDir = path.join(tmp, "cache");
    const res = await pullModel({ ...FAST, cacheDir });
    expect(h.requests).toEqual([]);
    expect(res.cached).toBe(false);
    expect(res.manifest.source.revision).toBe(h.commits[PICKSCORE_REPO]!.main);
    expect(res.manifest.source.files.find((f) => f.name === "model.safetensors")?.sha256).toBe(
      h.files[PICKSCORE_REPO]!["model.safetensors"]!.sha256,
    );
    const st = res.reused!.find((f) => f.file === "model.safetensors")!;
    expect(st.verified).toBe("blob-name");
    expect(st.message).toContain("its sha256 matches the name huggingface_hub stored it under");
    expect(st.message).toContain("not re-checked against the hub");
    expect(res.reused!.find((f) => f.file === "config.json")!.message).toContain("its git blob sha1 matches");
    // The next offline call, another dtype, finds the files recorded in pickrank's own cache.
    const fp16 = await pullModel({ ...FAST, cacheDir, dtype: "fp16" });
    expect(fp16.manifest.dtype).toBe("fp16");
    expect(fp16.reused).toBeUndefined();
    expect(h.requests).toEqual([]);
  });

  it("offline: names what is missing when the cache has only pytorch_model.bin, and asks nothing of the network", async () => {
    const h = (hub = await startFakeHub());
    const hfCache = fakeHfCache(path.join(tmp, "hf-hub"), h, { files: { [PICKSCORE_REPO]: ["config.json", "pytorch_model.bin"] } });
    vi.stubEnv("HF_HUB_CACHE", hfCache);
    vi.stubEnv("HF_ENDPOINT", h.url);
    vi.stubEnv("HF_HUB_OFFLINE", "1");
    const err = await errorOf(pullModel({ ...FAST, cacheDir: path.join(tmp, "cache") }));
    expect(err.code).toBe("DOWNLOAD_FAILED");
    const commit12 = h.commits[PICKSCORE_REPO]!.main!.slice(0, 12);
    const what = `what pickrank needs of yuvalkirstain/PickScore_v1@main (commit ${commit12})`;
    expect(err.message).toContain(`HF_HUB_OFFLINE is set and ${what} is not in the cache`);
    expect(err.message).toContain(`huggingface_hub's at ${hfCache}`);
    expect(err.message).toContain("model.safetensors missing (pytorch_model.bin is there, but pickrank reads only model.safetensors)");
    expect(err.details?.missing).toContain("model.safetensors");
    expect(h.requests).toEqual([]);
  });

  it("offline: names the tokenizer repo when only PickScore is cached", async () => {
    const h = (hub = await startFakeHub());
    vi.stubEnv(
      "HF_HUB_CACHE",
      fakeHfCache(path.join(tmp, "hf-hub"), h, { files: { [PICKSCORE_REPO]: ["config.json", "model.safetensors"] } }),
    );
    vi.stubEnv("HF_HUB_OFFLINE", "1");
    const err = await errorOf(pullModel({ ...FAST, cacheDir: path.join(tmp, "cache") }));
    expect(err.message).toContain(`HF_HUB_OFFLINE is set and ${TOKENIZER_REPO}@main is not in the cache`);
    expect(h.requests).toEqual([]);
  });

  it("offline: a blob whose bytes do not hash to its name is INTEGRITY, naming the file", async () => {
    const h = (hub = await startFakeHub());
    const damaged = Buffer.from(h.files[PICKSCORE_REPO]!["model.safetensors"]!.bytes);
    damaged[7]! ^= 1;
    vi.stubEnv(
      "HF_HUB_CACHE",
      fakeHfCache(path.join(tmp, "hf-hub"), h, { replace: { [PICKSCORE_REPO]: { "model.safetensors": damaged } } }),
    );
    vi.stubEnv("HF_HUB_OFFLINE", "1");
    const cacheDir = path.join(tmp, "cache");
    const err = await errorOf(pullModel({ ...FAST, cacheDir }));
    expect(err.code).toBe("INTEGRITY");
    expect(err.message).toMatch(/snapshots\/[0-9a-f]{40}\/model\.safetensors \(blob .*\) does not hash to its blob name/);
    expect(existsSync(path.join(cacheDir, "models"))).toBe(false);
  });
});
