/**
 * The hub protocol below pullModel: revision resolution, resumable verified downloads, retries,
 * Range handling, token hygiene across the CDN redirect, and the error messages, all against the fake
 * hub on loopback.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PickrankError } from "@pickrank/contract";
import { downloadFiles, fetchRevisionInfo } from "../src/hub/download.ts";
import { HubClient, parseEndpoint } from "../src/hub/http.ts";
import { PICKSCORE_REPO, startFakeHub, type FakeHub, type FakeHubOptions } from "../../../test/fakes/fake-hub.ts";
import { pickrankRejection as errorOf } from "../../../test/helpers/async.ts";

const FAST = { retries: 2, retryDelayMs: 5, connectTimeoutMs: 5_000, idleTimeoutMs: 5_000 };

let tmp: string;
let hub: FakeHub | undefined;

beforeEach(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), "pickrank-hubdl-"));
});
afterEach(async () => {
  await hub?.close();
  hub = undefined;
  rmSync(tmp, { recursive: true, force: true });
});

async function start(opts: FakeHubOptions = {}): Promise<FakeHub> {
  hub = await startFakeHub(opts);
  return hub;
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("fetchRevisionInfo", () => {
  it("resolves main to the commit and lists sizes and LFS hashes", async () => {
    const h = await start();
    const client = new HubClient({ endpoint: h.url, ...FAST });
    const info = await fetchRevisionInfo(client, PICKSCORE_REPO, "main");
    expect(info.commit).toBe(h.commits[PICKSCORE_REPO]!.main);
    const st = info.siblings.find((s) => s.rfilename === "model.safetensors");
    expect(st?.lfs?.sha256).toBe(h.files[PICKSCORE_REPO]!["model.safetensors"]!.sha256);
    expect(st?.size).toBe(h.files[PICKSCORE_REPO]!["model.safetensors"]!.size);
    expect(h.requests[0]?.url).toBe(`/api/models/${PICKSCORE_REPO}/revision/main?blobs=true`);
  });

  it("names the revision when it does not exist", async () => {
    const h = await start();
    const err = await errorOf(fetchRevisionInfo(new HubClient({ endpoint: h.url, ...FAST }), PICKSCORE_REPO, "no-such-branch"));
    expect(err.code).toBe("DOWNLOAD_FAILED");
    expect(err.message).toContain('Revision "no-such-branch" not found in yuvalkirstain/PickScore_v1');
  });

  it("retries 5xx answers with backoff and then succeeds", async () => {
    const h = await start({ faults: { serverErrors: { count: 2, status: 503 } } });
    const info = await fetchRevisionInfo(new HubClient({ endpoint: h.url, ...FAST }), PICKSCORE_REPO, "main");
    expect(info.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(h.requests.map((r) => r.status)).toEqual([503, 503, 200]);
  });

  it("gives up after the retries with DOWNLOAD_FAILED naming the status and the endpoint", async () => {
    const h = await start({ faults: { serverErrors: { count: 100 } } });
    const err = await errorOf(fetchRevisionInfo(new HubClient({ endpoint: h.url, ...FAST }), PICKSCORE_REPO, "main"));
    expect(err.code).toBe("DOWNLOAD_FAILED");
    expect(err.message).toMatch(/answered 500 .*after 3 attempts \(hub endpoint http:\/\/127\.0\.0\.1:\d+\)/);
    expect(h.requests).toHaveLength(3);
  });

  it("answers a 404 from an endpoint without the hub api with DOWNLOAD_FAILED naming the repo", async () => {
    const h = await start();
    const client = new HubClient({ endpoint: `${h.url}/nothing-here`, ...FAST });
    const err = await errorOf(fetchRevisionInfo(client, PICKSCORE_REPO, "main"));
    expect(err.code).toBe("DOWNLOAD_FAILED");
    expect(err.message).toContain('Repository "yuvalkirstain/PickScore_v1" not found at http://127.0.0.1');
  });
});

describe("parseEndpoint", () => {
  it("rejects a value that is not an http(s) URL with BAD_INPUT (a malformed setting, not a failed download)", () => {
    for (const bad of ["not a url", "ftp://example.com", "huggingface.co"]) {
      let err: unknown;
      try {
        parseEndpoint(bad);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(PickrankError);
      expect((err as PickrankError).code).toBe("BAD_INPUT");
      expect((err as PickrankError).message).toContain(`HF_ENDPOINT ${JSON.stringify(bad)}`);
      expect((err as PickrankError).message).toContain("expected an http(s) URL");
    }
  });

  it("keeps a mirror's path prefix without the trailing slash", () => {
    expect(parseEndpoint("https://mirror.example/hf/").href).toBe("https://mirror.example/hf");
  });
});

describe("downloadFiles", () => {
  async function download(
    h: FakeHub,
    files: string[],
    clientOpts: Partial<ConstructorParameters<typeof HubClient>[0]> = {},
    repo = PICKSCORE_REPO,
  ) {
    const client = new HubClient({ endpoint: h.url, ...FAST, ...clientOpts });
    const info = await fetchRevisionInfo(client, repo, "main");
    const dir = path.join(tmp, "dl", info.commit);
    const progress: { file: string; done: number; total: number }[] = [];
    const out = await downloadFiles(client, info, files, dir, (p) => progress.push(p));
    return { out, dir, progress, info };
  }

  it("downloads LFS and small files, verifies them and reports progress", async () => {
    const h = await start();
    const { out, dir, progress } = await download(h, ["config.json", "model.safetensors"]);
    const served = h.files[PICKSCORE_REPO]!;
    for (const name of ["config.json", "model.safetensors"]) {
      const bytes = readFileSync(path.join(dir, name));
      expect(sha256(bytes)).toBe(served[name]!.sha256);
      expect(out.find((f) => f.name === name)).toEqual({ name, size: served[name]!.size, sha256: served[name]!.sha256 });
    }
    expect(readdirSync(dir).filter((n) => n.endsWith(".part"))).toEqual([]);
    const last = progress.filter((p) => p.file === "model.safetensors").at(-1);
    expect(last).toEqual({
      stage: "download",
      file: "model.safetensors",
      done: served["model.safetensors"]!.size,
      total: served["model.safetensors"]!.size,
    });
    // The LFS file went resolve (302) → CDN; the small one was served by the hub itself.
    expect(h.requests.some((r) => r.server === "hub" && r.method === "GET" && r.url.includes("/resolve/") && r.status === 302)).toBe(true);
    expect(h.requests.some((r) => r.server === "cdn" && r.method === "GET" && r.status === 200)).toBe(true);
  });

  it("sends the token to the endpoint but never to the CDN host it redirects to", async () => {
    const h = await start({ token: "hf_secret" });
    await download(h, ["model.safetensors"], { token: "hf_secret" });
    const hubReqs = h.requests.filter((r) => r.server === "hub");
    const cdnReqs = h.requests.filter((r) => r.server === "cdn");
    expect(hubReqs.length).toBeGreaterThan(0);
    expect(cdnReqs.length).toBeGreaterThan(0);
    expect(hubReqs.every((r) => r.authorization === "Bearer hf_secret")).toBe(true);
    expect(cdnReqs.every((r) => r.authorization === undefined)).toBe(true);
  });

  it("resumes with a Range request after the connection drops mid-file", async () => {
    const h = await start({ faults: { dropAfter: { file: "model.safetensors", bytes: 1_000_000 } } });
    const { dir } = await download(h, ["model.safetensors"]);
    const served = h.files[PICKSCORE_REPO]!["model.safetensors"]!;
    expect(sha256(readFileSync(path.join(dir, "model.safetensors")))).toBe(served.sha256);
    const cdnGets = h.requests.filter((r) => r.server === "cdn" && r.method === "GET");
    expect(cdnGets).toHaveLength(2);
    expect(cdnGets[1]?.range).toMatch(/^bytes=\d+-$/);
    expect(Number(cdnGets[1]!.range!.slice(6, -1))).toBeGreaterThan(0);
    expect(cdnGets[1]?.status).toBe(206);
  });

  it("resumes from a .part left by an earlier call", async () => {
    const h = await start();
    const served = h.files[PICKSCORE_REPO]!["model.safetensors"]!;
    const dir = path.join(tmp, "dl", h.commits[PICKSCORE_REPO]!.main!);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, "model.safetensors.part"), served.bytes.subarray(0, 4096));
    await download(h, ["model.safetensors"]);
    expect(h.requests.find((r) => r.server === "cdn" && r.method === "GET")?.range).toBe("bytes=4096-");
    expect(sha256(readFileSync(path.join(dir, "model.safetensors")))).toBe(served.sha256);
  });

  it("starts over when the server ignores Range and answers 200", async () => {
    const h = await start({ faults: { ignoreRange: true } });
    const served = h.files[PICKSCORE_REPO]!["model.safetensors"]!;
    const dir = path.join(tmp, "dl", h.commits[PICKSCORE_REPO]!.main!);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, "model.safetensors.part"), served.bytes.subarray(0, 4096));
    await download(h, ["model.safetensors"]);
    const get = h.requests.find((r) => r.server === "cdn" && r.method === "GET");
    expect(get?.range).toBe("bytes=4096-");
    expect(get?.status).toBe(200);
    // Appending the whole body to the 4 KiB would have failed verification; it verifies.
    expect(sha256(readFileSync(path.join(dir, "model.safetensors")))).toBe(served.sha256);
  });

  it("discards a .part with wrong bytes and downloads once more from zero", async () => {
    const h = await start();
    const served = h.files[PICKSCORE_REPO]!["model.safetensors"]!;
    const dir = path.join(tmp, "dl", h.commits[PICKSCORE_REPO]!.main!);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, "model.safetensors.part"), Buffer.alloc(4096, 7));
    await download(h, ["model.safetensors"]);
    const gets = h.requests.filter((r) => r.server === "cdn" && r.method === "GET");
    expect(gets.map((g) => g.range)).toEqual(["bytes=4096-", undefined]);
    expect(sha256(readFileSync(path.join(dir, "model.safetensors")))).toBe(served.sha256);
  });

  it("fails with INTEGRITY naming expected and actual sha256 when the hub keeps serving corrupt bytes", async () => {
    const h = await start({ faults: { corrupt: { file: "model.safetensors" } } });
    const client = new HubClient({ endpoint: h.url, ...FAST });
    const info = await fetchRevisionInfo(client, PICKSCORE_REPO, "main");
    const dir = path.join(tmp, "dl", info.commit);
    const err = await errorOf(downloadFiles(client, info, ["model.safetensors"], dir));
    const served = h.files[PICKSCORE_REPO]!["model.safetensors"]!;
    expect(err.code).toBe("INTEGRITY");
    expect(err.message).toContain(`expected sha256 ${served.sha256} but received `);
    expect(err.details?.actual).toMatch(/^[0-9a-f]{64}$/);
    expect(err.details?.actual).not.toBe(served.sha256);
    expect(existsSync(path.join(dir, "model.safetensors"))).toBe(false);
    expect(existsSync(path.join(dir, "model.safetensors.part"))).toBe(false);
  });

  it("checks small files against their git blob id", async () => {
    const h = await start({ faults: { corrupt: { file: "config.json" } } });
    const client = new HubClient({ endpoint: h.url, ...FAST });
    const info = await fetchRevisionInfo(client, PICKSCORE_REPO, "main");
    const err = await errorOf(downloadFiles(client, info, ["config.json"], path.join(tmp, "dl")));
    expect(err.code).toBe("INTEGRITY");
    expect(err.message).toContain(`expected git blob sha1 ${h.files[PICKSCORE_REPO]!["config.json"]!.gitSha1}`);
  });

  it("recovers from one corrupt download by downloading again", async () => {
    const h = await start({ faults: { corrupt: { file: "model.safetensors", times: 1 } } });
    const { dir } = await download(h, ["model.safetensors"]);
    expect(sha256(readFileSync(path.join(dir, "model.safetensors")))).toBe(h.files[PICKSCORE_REPO]!["model.safetensors"]!.sha256);
  });

  it("names a file the repo does not list", async () => {
    const h = await start();
    const err = await errorOf(download(h, ["pytorch_model.bin"]));
    expect(err.code).toBe("DOWNLOAD_FAILED");
    expect(err.message).toContain('File "pytorch_model.bin" not found in yuvalkirstain/PickScore_v1@main');
  });

  it("skips files already verified in the folder (no second GET)", async () => {
    const h = await start();
    await download(h, ["config.json"]);
    const before = h.requests.length;
    await download(h, ["config.json"]);
    expect(h.requests.slice(before).map((r) => r.method)).toEqual(["GET"]); // only the api call
    expect(h.requests.at(-1)?.url).toContain("/api/models/");
  });

  it("resumes after a stalled body trips the idle timeout", async () => {
    const h = await start({ faults: { stallAfter: { file: "model.safetensors", bytes: 100_000 } } });
    const { dir } = await download(h, ["model.safetensors"], { idleTimeoutMs: 200 });
    const gets = h.requests.filter((r) => r.server === "cdn" && r.method === "GET");
    expect(gets.map((g) => g.range)).toEqual([undefined, "bytes=100000-"]);
    expect(sha256(readFileSync(path.join(dir, "model.safetensors")))).toBe(h.files[PICKSCORE_REPO]!["model.safetensors"]!.sha256);
  });

  it("does not count as the server's silence the time this process itself was held up (a blocked event loop)", async () => {
    // The server pauses 100 ms mid-body (well under the 400 ms idle limit); 50 ms into the pause this process is
    // blocked for 800 ms. On waking, the server's rest and the idle timer are both due: the timer, run first, must not
    // take the time this process could not listen (nor the in-process server send) as the server's silence.
    const block = () => {
      const until = Date.now() + 800;
      while (Date.now() < until) {}
    };
    const h = await start({
      faults: { pauseAfter: { file: "model.safetensors", bytes: 100_000, ms: 100, onPause: () => setTimeout(block, 50) } },
    });
    const { dir } = await download(h, ["model.safetensors"], { idleTimeoutMs: 400 });
    const gets = h.requests.filter((r) => r.server === "cdn" && r.method === "GET");
    expect(gets.map((g) => g.range)).toEqual([undefined]);
    expect(sha256(readFileSync(path.join(dir, "model.safetensors")))).toBe(h.files[PICKSCORE_REPO]!["model.safetensors"]!.sha256);
  });

  it("keeps the .part and says the next pull resumes when the body keeps stalling", async () => {
    const h = await start({
      faults: { dropAfter: { file: "model.safetensors", bytes: 100_000 }, stallAfter: { file: "model.safetensors", bytes: 0, times: 100 } },
    });
    const err = await errorOf(download(h, ["model.safetensors"], { idleTimeoutMs: 150, retries: 1 }));
    expect(err.code).toBe("DOWNLOAD_FAILED");
    expect(err.message).toContain("Downloading model.safetensors from yuvalkirstain/PickScore_v1 kept failing (no data for 150 ms)");
    expect(err.message).toContain("the next pull resumes from there");
    const part = err.details?.part as string;
    expect(part.endsWith("model.safetensors.part")).toBe(true);
    // The first try got 100 000 bytes before the drop; the resumed ones stalled with nothing new.
    expect(readFileSync(part).length).toBe(100_000);
  });

  it("retries a request the server never answers (connect timeout), then names the timeout", async () => {
    const h = await start({ faults: { hang: { count: 1, match: /^\/api\// } } });
    const client = new HubClient({ endpoint: h.url, ...FAST, connectTimeoutMs: 200 });
    expect((await fetchRevisionInfo(client, PICKSCORE_REPO, "main")).commit).toMatch(/^[0-9a-f]{40}$/);
    await h.close();
    const h2 = await start({ faults: { hang: { count: 100 } } });
    const err = await errorOf(
      fetchRevisionInfo(new HubClient({ endpoint: h2.url, ...FAST, connectTimeoutMs: 150 }), PICKSCORE_REPO, "main"),
    );
    expect(err.code).toBe("DOWNLOAD_FAILED");
    expect(err.message).toContain("could not reach 127.0.0.1:");
    expect(err.message).toContain("(no answer within 150 ms) after 3 attempts");
  });

  it("honours an AbortSignal with ABORTED", async () => {
    const h = await start();
    const ctl = new AbortController();
    ctl.abort();
    const err = await errorOf(download(h, ["model.safetensors"], { signal: ctl.signal }));
    expect(err.code).toBe("ABORTED");
  });
});
