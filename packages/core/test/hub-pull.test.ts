/**
 * pullModel end to end against the fake hub: download, verify, convert the tiny CLIP into a temp
 * cache, then the cache behaviour (instant second call with no request at all, refresh, offline), the
 * failure modes a user meets (bad endpoint, closed port, missing repo, auth, corruption) and
 * concurrent pulls.
 */
import { spawnSync } from "node:child_process";
import { createServer } from "node:net";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { cacheRoot, listModels } from "../src/hub/cache.ts";
import { pullModel, type PullOptions } from "../src/hub/pull.ts";
import { PICKSCORE_REPO, defaultRepos, startFakeHub, type FakeHub, type FakeHubOptions } from "../../../test/fakes/fake-hub.ts";
import { pickrankRejection as errorOf } from "../../../test/helpers/async.ts";

const FAST: PullOptions = { retries: 2, retryDelayMs: 5, connectTimeoutMs: 5_000, idleTimeoutMs: 5_000 };

let tmp: string;
let hub: FakeHub | undefined;

beforeEach(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), "pickrank-pull-"));
  // The developer's own settings must not leak in (a real token, a real endpoint, offline mode).
  vi.stubEnv("HF_TOKEN", "");
  vi.stubEnv("HUGGING_FACE_HUB_TOKEN", "");
  vi.stubEnv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "");
  vi.stubEnv("HF_TOKEN_PATH", path.join(tmp, "no-such-token-file"));
  vi.stubEnv("HF_ENDPOINT", "");
  vi.stubEnv("HF_HUB_OFFLINE", "");
  // Nor their huggingface_hub cache (hub-hf-cache.test.ts tests its reuse).
  vi.stubEnv("HF_HUB_CACHE", path.join(tmp, "no-hub-cache"));
});
afterEach(async () => {
  vi.unstubAllEnvs();
  await hub?.close();
  hub = undefined;
  rmSync(tmp, { recursive: true, force: true });
});

async function start(opts: FakeHubOptions = {}): Promise<FakeHub> {
  hub = await startFakeHub(opts);
  return hub;
}

function cacheIn(name = "cache"): string {
  return path.join(tmp, name);
}

/** Every file under a folder, relative paths. */
function tree(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => path.relative(dir, path.join(d.parentPath, d.name)))
    .sort();
}

describe("pullModel", () => {
  it("downloads, verifies and converts, recording the source in the manifest", async () => {
    const h = await start();
    const cacheDir = cacheIn();
    const stages = new Set<string>();
    const res = await pullModel({ ...FAST, endpoint: h.url, cacheDir, onProgress: (p) => stages.add(`${p.stage}:${p.file ?? ""}`) });
    const commit = h.commits[PICKSCORE_REPO]!.main!;
    expect(res.cached).toBe(false);
    expect(res.dir).toBe(path.join(cacheDir, "models", `yuvalkirstain--PickScore_v1--${commit.slice(0, 12)}--fp32`));
    expect(res.manifest.dtype).toBe("fp32");
    expect(res.manifest.source.repo).toBe(PICKSCORE_REPO);
    expect(res.manifest.source.revision).toBe(commit);
    const served = h.files[PICKSCORE_REPO]!;
    expect([...res.manifest.source.files].sort((a, b) => a.name.localeCompare(b.name))).toEqual([
      { name: "config.json", size: served["config.json"]!.size, sha256: served["config.json"]!.sha256 },
      { name: "model.safetensors", size: served["model.safetensors"]!.size, sha256: served["model.safetensors"]!.sha256 },
    ]);
    expect(existsSync(path.join(res.dir, res.manifest.graphs.text))).toBe(true);
    expect(existsSync(path.join(res.dir, res.manifest.graphs.vision))).toBe(true);
    expect(existsSync(path.join(res.dir, res.manifest.tokenizer.dir))).toBe(true);
    // Only the files needed were fetched: no README, and the tokenizer files the laion repo lists.
    const fetched = h.requests.filter((r) => r.method === "GET" && r.url.includes("/resolve/")).map((r) => r.url.split("/").at(-1));
    expect(fetched.sort()).toEqual([
      "config.json",
      "merges.txt",
      "model.safetensors",
      "tokenizer.json",
      "tokenizer_config.json",
      "vocab.json",
    ]);
    expect(stages.has("download:model.safetensors")).toBe(true);
    expect(stages.has("convert:")).toBe(true);
    // No temporaries left behind.
    expect(tree(cacheDir).filter((f) => f.endsWith(".part") || f.endsWith(".tmp") || f.endsWith(".lock"))).toEqual([]);
    expect(readdirSync(path.join(cacheDir, "models"))).toEqual([path.basename(res.dir)]);
  });

  it("returns the cached model on a second call without any request reaching the hub", async () => {
    const h = await start();
    const cacheDir = cacheIn();
    const first = await pullModel({ ...FAST, endpoint: h.url, cacheDir });
    const seen = h.requests.length;
    const second = await pullModel({ ...FAST, endpoint: h.url, cacheDir });
    expect(h.requests.length).toBe(seen);
    expect(second).toEqual({ dir: first.dir, manifest: first.manifest, cached: true });
    // Not even a valid endpoint is needed now.
    vi.stubEnv("HF_ENDPOINT", "::not a url::");
    expect((await pullModel({ cacheDir })).cached).toBe(true);
    expect(h.requests.length).toBe(seen);
  });

  it("re-resolves the revision online with refresh and keeps the cached conversion when the commit is unchanged", async () => {
    const h = await start();
    const cacheDir = cacheIn();
    await pullModel({ ...FAST, endpoint: h.url, cacheDir });
    const seen = h.requests.length;
    const res = await pullModel({ ...FAST, endpoint: h.url, cacheDir, refresh: true });
    expect(res.cached).toBe(true);
    expect(h.requests.slice(seen).map((r) => r.url)).toEqual([`/api/models/${PICKSCORE_REPO}/revision/main?blobs=true`]);
  });

  it("pins a revision to a commit sha and to a tag", async () => {
    const repos = defaultRepos();
    repos[PICKSCORE_REPO]!.revisions = { "v1.0": "main" };
    const h = await start({ repos });
    const commit = h.commits[PICKSCORE_REPO]!.main!;
    expect(h.commits[PICKSCORE_REPO]!["v1.0"]).toBe(commit);
    const cacheDir = cacheIn();
    const bySha = await pullModel({ ...FAST, endpoint: h.url, cacheDir, revision: commit });
    expect(bySha.manifest.source.revision).toBe(commit);
    const byTag = await pullModel({ ...FAST, endpoint: h.url, cacheDir, revision: "v1.0" });
    expect(byTag.dir).toBe(bySha.dir);
    expect(byTag.cached).toBe(true);
    const seen = h.requests.length;
    // A sha needs no ref lookup online: the second call is cache-only.
    expect((await pullModel({ ...FAST, endpoint: h.url, cacheDir, revision: commit })).cached).toBe(true);
    expect(h.requests.length).toBe(seen);
  });

  it("resumes a download after the connection drops and the result verifies", async () => {
    const h = await start({ faults: { dropAfter: { file: "model.safetensors", bytes: 2_000_000 } } });
    const res = await pullModel({ ...FAST, endpoint: h.url, cacheDir: cacheIn() });
    const gets = h.requests.filter((r) => r.server === "cdn" && r.method === "GET");
    expect(gets.length).toBe(2);
    expect(gets[1]!.range).toMatch(/^bytes=[1-9]\d*-$/);
    expect(gets[1]!.status).toBe(206);
    expect(res.manifest.source.files.find((f) => f.name === "model.safetensors")?.sha256).toBe(
      h.files[PICKSCORE_REPO]!["model.safetensors"]!.sha256,
    );
  });

  it("fails with INTEGRITY and leaves no file in place when the hub serves corrupt weights", async () => {
    const h = await start({ faults: { corrupt: { file: "model.safetensors" } } });
    const cacheDir = cacheIn();
    const err = await errorOf(pullModel({ ...FAST, endpoint: h.url, cacheDir }));
    expect(err.code).toBe("INTEGRITY");
    expect(err.message).toContain("model.safetensors");
    expect(err.message).toMatch(/expected sha256 [0-9a-f]{64} but received [0-9a-f]{64}/);
    const files = tree(cacheDir);
    expect(files.filter((f) => f.includes("model.safetensors"))).toEqual([]);
    expect(existsSync(path.join(cacheDir, "models"))).toBe(false);
    expect(files.filter((f) => f.endsWith(".lock"))).toEqual([]);
  });

  it("rejects an HF_ENDPOINT that is not a URL with BAD_INPUT", async () => {
    vi.stubEnv("HF_ENDPOINT", "huggingface dot co");
    const err = await errorOf(pullModel({ ...FAST, cacheDir: cacheIn() }));
    expect(err.code).toBe("BAD_INPUT");
    expect(err.message).toBe(
      'HF_ENDPOINT "huggingface dot co" is not a URL; expected an http(s) URL such as https://huggingface.co (or unset HF_ENDPOINT to use it)',
    );
  });

  it("names the endpoint and what to change when nothing listens there", async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    vi.stubEnv("HF_ENDPOINT", `http://127.0.0.1:${port}`);
    // Default retries: a refused connection is retried once only, so the user hears quickly.
    const err = await errorOf(pullModel({ cacheDir: cacheIn(), retryDelayMs: 5 }));
    expect(err.message).toContain("after 2 attempts");
    expect(err.code).toBe("DOWNLOAD_FAILED");
    expect(err.message).toContain(`could not reach 127.0.0.1:${port}`);
    expect(err.message).toContain("ECONNREFUSED");
    expect(err.message).toContain(`hub endpoint http://127.0.0.1:${port}`);
    expect(err.message).toContain("HF_ENDPOINT");
    expect(err.message).toContain("HF_HUB_OFFLINE=1");
  });

  it("names a repository that does not exist", async () => {
    const h = await start();
    const err = await errorOf(pullModel({ ...FAST, endpoint: h.url, cacheDir: cacheIn(), repo: "nobody/missing-model" }));
    expect(err.code).toBe("DOWNLOAD_FAILED");
    expect(err.message).toContain('Repository "nobody/missing-model" not found at ' + h.url);
    expect(err.details?.status).toBe(404);
  });

  it("asks for HF_TOKEN when the hub answers 401, and works with the token", async () => {
    const h = await start({ token: "hf_test_token" });
    const cacheDir = cacheIn();
    const err = await errorOf(pullModel({ ...FAST, endpoint: h.url, cacheDir }));
    expect(err.code).toBe("DOWNLOAD_FAILED");
    expect(err.details?.status).toBe(401);
    expect(err.message).toContain("Set HF_TOKEN");

    const wrong = await errorOf(pullModel({ ...FAST, endpoint: h.url, cacheDir, token: "hf_wrong" }));
    expect(wrong.details?.status).toBe(403);
    expect(wrong.message).toContain("A token was sent (from the token option), but the hub refused it");

    vi.stubEnv("HF_TOKEN", "hf_test_token");
    const res = await pullModel({ ...FAST, endpoint: h.url, cacheDir });
    expect(res.cached).toBe(false);
    const authed = h.requests.filter((r) => r.status < 400);
    expect(authed.filter((r) => r.server === "hub").every((r) => r.authorization === "Bearer hf_test_token")).toBe(true);
    expect(authed.filter((r) => r.server === "cdn").every((r) => r.authorization === undefined)).toBe(true);
  });

  it("falls back to huggingface-cli's saved token file, and names it when the hub refuses it", async () => {
    const h = await start({ token: "hf_saved_token" });
    const hfHome = path.join(tmp, "hf-home");
    mkdirSync(hfHome);
    writeFileSync(path.join(hfHome, "token"), "hf_wrong_saved\n");
    vi.stubEnv("HF_TOKEN_PATH", "");
    vi.stubEnv("HF_HOME", hfHome);
    const wrong = await errorOf(pullModel({ ...FAST, endpoint: h.url, cacheDir: cacheIn() }));
    expect(wrong.details?.status).toBe(403);
    expect(wrong.message).toContain(`A token was sent (from ${path.join(hfHome, "token")}), but the hub refused it`);

    writeFileSync(path.join(hfHome, "token"), "hf_saved_token\n");
    const res = await pullModel({ ...FAST, endpoint: h.url, cacheDir: cacheIn() });
    expect(res.cached).toBe(false);
    expect(h.requests.filter((r) => r.server === "hub" && r.status < 400).every((r) => r.authorization === "Bearer hf_saved_token")).toBe(
      true,
    );

    // HF_TOKEN wins over the file; HF_HUB_DISABLE_IMPLICIT_TOKEN turns both off, as in huggingface_hub.
    vi.stubEnv("HF_TOKEN", "hf_wrong_env");
    const fromEnv = await errorOf(pullModel({ ...FAST, endpoint: h.url, cacheDir: cacheIn("cache2") }));
    expect(fromEnv.message).toContain("A token was sent (from HF_TOKEN)");
    vi.stubEnv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1");
    const none = await errorOf(pullModel({ ...FAST, endpoint: h.url, cacheDir: cacheIn("cache2") }));
    expect(none.details?.status).toBe(401);
    expect(none.message).toContain("Set HF_TOKEN");
  });

  it("uses only the cache with HF_HUB_OFFLINE=1: clear error when not cached, converts from verified downloads when they are", async () => {
    const h = await start();
    const cacheDir = cacheIn();
    vi.stubEnv("HF_ENDPOINT", h.url);
    vi.stubEnv("HF_HUB_OFFLINE", "1");
    const err = await errorOf(pullModel({ ...FAST, cacheDir }));
    expect(err.code).toBe("DOWNLOAD_FAILED");
    expect(err.message).toContain("HF_HUB_OFFLINE is set and yuvalkirstain/PickScore_v1@main is not in the cache");
    expect(h.requests).toEqual([]);

    vi.stubEnv("HF_HUB_OFFLINE", "");
    const online = await pullModel({ ...FAST, cacheDir });
    const seen = h.requests.length;
    vi.stubEnv("HF_HUB_OFFLINE", "1");
    const cached = await pullModel({ ...FAST, cacheDir });
    expect(cached).toEqual({ ...online, cached: true });
    // Another dtype: no conversion cached yet, but the verified downloads are, so no network is needed.
    const fp16 = await pullModel({ ...FAST, cacheDir, dtype: "fp16" });
    expect(fp16.cached).toBe(false);
    expect(fp16.manifest.dtype).toBe("fp16");
    expect(fp16.manifest.source).toEqual(online.manifest.source);
    expect(h.requests.length).toBe(seen);
    expect((await listModels(cacheDir)).map((m) => m.manifest.dtype).sort()).toEqual(["fp16", "fp32"]);
  });

  it("lets two concurrent pulls of one model share one download and one conversion", async () => {
    const h = await start();
    const cacheDir = cacheIn();
    const [a, b] = await Promise.all([
      pullModel({ ...FAST, endpoint: h.url, cacheDir }),
      pullModel({ ...FAST, endpoint: h.url, cacheDir }),
    ]);
    expect(a.dir).toBe(b.dir);
    expect([a.cached, b.cached].sort()).toEqual([false, true]);
    expect(
      h.requests.filter(
        (r) => r.server === "cdn" && r.method === "GET" && r.url.includes(h.files[PICKSCORE_REPO]!["model.safetensors"]!.sha256),
      ),
    ).toHaveLength(1);
    expect(tree(cacheDir).filter((f) => f.endsWith(".lock") || f.endsWith(".part") || f.endsWith(".tmp"))).toEqual([]);
  });

  it("takes over lock files left by a process that died", async () => {
    const h = await start();
    const cacheDir = cacheIn();
    const commit = h.commits[PICKSCORE_REPO]!.main!;
    const dead = spawnSync(process.execPath, ["-e", ""]).pid!;
    mkdirSync(path.join(cacheDir, "locks"), { recursive: true });
    const stale = JSON.stringify({ pid: dead, host: os.hostname() });
    writeFileSync(path.join(cacheDir, "locks", `download--yuvalkirstain--PickScore_v1--${commit}.lock`), stale);
    writeFileSync(path.join(cacheDir, "locks", `model--yuvalkirstain--PickScore_v1--${commit.slice(0, 12)}--fp32.lock`), stale);
    const res = await pullModel({ ...FAST, endpoint: h.url, cacheDir });
    expect(res.cached).toBe(false);
    expect(readdirSync(path.join(cacheDir, "locks"))).toEqual([]);
  });

  it("verifies a complete .part left before its rename without downloading it again", async () => {
    const h = await start();
    const cacheDir = cacheIn();
    const commit = h.commits[PICKSCORE_REPO]!.main!;
    const dl = path.join(cacheDir, "downloads", "yuvalkirstain--PickScore_v1", commit);
    mkdirSync(dl, { recursive: true });
    writeFileSync(path.join(dl, "model.safetensors.part"), h.files[PICKSCORE_REPO]!["model.safetensors"]!.bytes);
    await pullModel({ ...FAST, endpoint: h.url, cacheDir });
    expect(h.requests.filter((r) => r.server === "cdn")).toEqual([]);
    expect(existsSync(path.join(dl, "model.safetensors"))).toBe(true);
  });

  it("rejects bad options with BAD_INPUT naming the option", async () => {
    const e1 = await errorOf(pullModel({ cacheDir: cacheIn(), dtype: "fp8" as "fp32" }));
    expect(e1.code).toBe("BAD_INPUT");
    expect(e1.message).toBe('Expected "fp32", "fp16" or "int8" for dtype but received "fp8" of type string');
    const e2 = await errorOf(pullModel({ cacheDir: cacheIn(), repo: "../etc/passwd" }));
    expect(e2.code).toBe("BAD_INPUT");
    expect(e2.message).toContain("for repo but received");
    const e3 = await errorOf(pullModel({ cacheDir: cacheIn(), revision: "" }));
    expect(e3.code).toBe("BAD_INPUT");
  });

  it("keeps the .part when aborted mid-download and the next call resumes from it", async () => {
    const h = await start({ faults: { stallAfter: { file: "model.safetensors", bytes: 300_000 } } });
    const cacheDir = cacheIn();
    const ctl = new AbortController();
    const err = await errorOf(
      pullModel({
        ...FAST,
        endpoint: h.url,
        cacheDir,
        signal: ctl.signal,
        onProgress: (p) => {
          if (p.file === "model.safetensors" && p.done > 0) ctl.abort();
        },
      }),
    );
    expect(err.code).toBe("ABORTED");
    expect(tree(cacheDir).filter((f) => f.endsWith(".lock"))).toEqual([]);
    const parts = tree(cacheDir).filter((f) => f.endsWith("model.safetensors.part"));
    expect(parts).toHaveLength(1);
    const have = statSync(path.join(cacheDir, parts[0]!)).size;
    expect(have).toBeGreaterThan(0);

    const res = await pullModel({ ...FAST, endpoint: h.url, cacheDir });
    const gets = h.requests.filter((r) => r.server === "cdn" && r.method === "GET");
    expect(gets.map((g) => g.range)).toEqual([undefined, `bytes=${have}-`]);
    expect(res.manifest.source.files.find((f) => f.name === "model.safetensors")?.sha256).toBe(
      h.files[PICKSCORE_REPO]!["model.safetensors"]!.sha256,
    );
  });

  it("honours an aborted signal", async () => {
    const h = await start();
    const ctl = new AbortController();
    ctl.abort();
    const err = await errorOf(pullModel({ ...FAST, endpoint: h.url, cacheDir: cacheIn(), signal: ctl.signal }));
    expect(err.code).toBe("ABORTED");
    expect(h.requests).toEqual([]);
  });
});

describe("listModels", () => {
  it("returns [] for an empty or missing cache and skips folders that are not models", async () => {
    expect(await listModels(path.join(tmp, "nothing"))).toEqual([]);
    mkdirSync(path.join(tmp, "c", "models", "junk"), { recursive: true });
    mkdirSync(path.join(tmp, "c", "models", ".half-done.tmp"), { recursive: true });
    writeFileSync(path.join(tmp, "c", "models", "junk", "pickrank.json"), "{}");
    expect(await listModels(path.join(tmp, "c"))).toEqual([]);
  });
});

describe("cacheRoot", () => {
  it("prefers PICKRANK_CACHE, then XDG_CACHE_HOME/pickrank, then ~/.cache/pickrank", () => {
    vi.stubEnv("PICKRANK_CACHE", "/tmp/pr-cache");
    vi.stubEnv("XDG_CACHE_HOME", "/tmp/xdg");
    expect(cacheRoot()).toBe("/tmp/pr-cache");
    vi.stubEnv("PICKRANK_CACHE", "");
    expect(cacheRoot()).toBe("/tmp/xdg/pickrank");
    vi.stubEnv("XDG_CACHE_HOME", "");
    expect(cacheRoot()).toBe(path.join(os.homedir(), ".cache", "pickrank"));
  });
});
