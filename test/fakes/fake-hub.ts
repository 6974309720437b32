/**
 * A fake Hugging Face hub that speaks the parts of the real protocol pickrank uses (the same routes and
 * headers huggingface_hub reads), so download code can be tested on loopback without the network.
 *
 * Routes (hub server):
 *   GET  /api/models/{repo}/revision/{revision}[?blobs=true]  → { id, sha, siblings: [{ rfilename, size, blobId, lfs? }] }
 *   HEAD/GET /{repo}/resolve/{revision}/{file}
 *        small file → 200 + bytes, ETag = git blob sha1, X-Repo-Commit
 *        LFS file   → 302 Location: {cdn}/cdn/{sha256}?…, X-Linked-Etag = sha256, X-Linked-Size, X-Repo-Commit
 * Routes (CDN, a second server by default so it is a different origin, as cdn-lfs.huggingface.co is):
 *   HEAD/GET /cdn/{sha256}  → bytes, with Range support (206 + Content-Range)
 *
 * Errors carry the hub's X-Error-Code header (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo).
 * Every request lands in `requests` so tests can assert what reached the server (or that nothing did).
 */
import { createHash } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const FAKE_HUB_MODEL_DIR = path.resolve(repoRoot, "../shared/fixtures/pickscore-reference/tiny-clip");
export const FAKE_HUB_TOKENIZER_DIR = path.resolve(repoRoot, "../shared/data/clip-tokenizer");
export const PICKSCORE_REPO = "yuvalkirstain/PickScore_v1";
export const TOKENIZER_REPO = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K";

export interface FakeHubRepoSpec {
  /** File name in the repo → bytes, or a path on disk to read them from. */
  files: Record<string, Uint8Array | string>;
  /**
   * Named revisions (branches, tags) → a commit sha or the name of another revision ("v1.0": "main").
   * `main` defaults to a sha derived from the content, so it is stable across servers.
   */
  revisions?: Record<string, string>;
  /** Requires a token for this repo even when `token` is unset globally (a gated repo). */
  gated?: boolean;
}

export interface FakeHubFaults {
  /** Cut the connection after `bytes` body bytes on the first `times` (default 1) GETs of `file`. */
  dropAfter?: { file: string; bytes: number; times?: number };
  /** Serve `file` with one byte flipped (same size) on the first `times` GETs (default: every GET). */
  corrupt?: { file: string; times?: number };
  /** Answer the first `count` requests whose path matches with `status` (default 500). */
  serverErrors?: { count: number; status?: number; match?: RegExp };
  /** Answer 200 with the whole file even when a Range header asks for part of it. */
  ignoreRange?: boolean;
  /** Send `bytes` body bytes of `file`, then go silent with the socket open (first `times` GETs, default 1). */
  stallAfter?: { file: string; bytes: number; times?: number };
  /**
   * Send `bytes` body bytes of `file`, pause `ms` milliseconds, then send the rest (first GET only);
   * `onPause` is called as the pause begins (a test blocks this process there).
   */
  pauseAfter?: { file: string; bytes: number; ms: number; onPause?: () => void };
  /** Never answer the first `count` requests whose path matches (no status line, socket left open). */
  hang?: { count: number; match?: RegExp };
}

export interface FakeHubOptions {
  /** Repos served; defaults to the tiny PickScore fixture and the CLIP tokenizer (see `defaultRepos`). */
  repos?: Record<string, FakeHubRepoSpec>;
  /** When set, the hub answers 401 to requests without `Authorization: Bearer <token>` (403 for a wrong one). */
  token?: string;
  /** "separate" (default): the CDN is another server (another origin); "same-origin": served by the hub. */
  cdn?: "separate" | "same-origin";
  faults?: FakeHubFaults;
  /** Files at least this large (and every *.safetensors / *.bin) are stored in LFS. Default 10 MB. */
  lfsThreshold?: number;
}

export interface FakeHubRequest {
  server: "hub" | "cdn";
  method: string;
  /** Path and query as received. */
  url: string;
  authorization: string | undefined;
  range: string | undefined;
  /** HTTP status sent; 0 when the request was left unanswered (the `hang` fault). */
  status: number;
}

export interface FakeHubFile {
  name: string;
  bytes: Buffer;
  size: number;
  sha256: string;
  gitSha1: string;
  lfs: boolean;
}

export interface FakeHub {
  /** Hub endpoint, e.g. http://127.0.0.1:41234 (use as HF_ENDPOINT). */
  url: string;
  /** CDN origin (equal to `url` when cdn is "same-origin"). */
  cdnUrl: string;
  requests: FakeHubRequest[];
  /** repo → revision name → commit sha. */
  commits: Record<string, Record<string, string>>;
  /** repo → file name → what is served (size and hashes, for assertions). */
  files: Record<string, Record<string, FakeHubFile>>;
  close(): Promise<void>;
}

/** The repos a default fake hub serves: tiny PickScore weights and the CLIP tokenizer files. */
export function defaultRepos(): Record<string, FakeHubRepoSpec> {
  const tokenizerFiles: Record<string, string> = {};
  for (const name of readdirSync(FAKE_HUB_TOKENIZER_DIR)) tokenizerFiles[name] = path.join(FAKE_HUB_TOKENIZER_DIR, name);
  return {
    [PICKSCORE_REPO]: {
      files: {
        "config.json": path.join(FAKE_HUB_MODEL_DIR, "config.json"),
        "model.safetensors": path.join(FAKE_HUB_MODEL_DIR, "model.safetensors"),
        // The real repo holds more than we fetch; the client must pick only what it needs.
        "README.md": Buffer.from("---\nlicense: mit\n---\n# PickScore v1 (fake hub copy)\n"),
      },
    },
    [TOKENIZER_REPO]: { files: { ...tokenizerFiles, "README.md": Buffer.from("# CLIP ViT-H-14 (fake)\n") } },
  };
}

function gitBlobSha1(bytes: Buffer): string {
  return createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex");
}

function fakeCommit(repo: string, files: FakeHubFile[]): string {
  const h = createHash("sha1").update(`commit ${repo}\n`);
  for (const f of files) h.update(`${f.name} ${f.gitSha1}\n`);
  return h.digest("hex");
}

interface RepoState {
  name: string;
  files: Map<string, FakeHubFile>;
  revisions: Record<string, string>;
  gated: boolean;
}

export async function startFakeHub(opts: FakeHubOptions = {}): Promise<FakeHub> {
  const lfsThreshold = opts.lfsThreshold ?? 10 * 1024 * 1024;
  const repos = new Map<string, RepoState>();
  for (const [name, spec] of Object.entries(opts.repos ?? defaultRepos())) {
    const files = new Map<string, FakeHubFile>();
    for (const [fname, src] of Object.entries(spec.files)) {
      const bytes = typeof src === "string" ? readFileSync(src) : Buffer.from(src);
      files.set(fname, {
        name: fname,
        bytes,
        size: bytes.length,
        sha256: createHash("sha256").update(bytes).digest("hex"),
        gitSha1: gitBlobSha1(bytes),
        lfs: bytes.length >= lfsThreshold || /\.(safetensors|bin|onnx)$/.test(fname),
      });
    }
    const revisions: Record<string, string> = { main: fakeCommit(name, [...files.values()]) };
    for (const [rev, target] of Object.entries(spec.revisions ?? {})) revisions[rev] = revisions[target] ?? target;
    repos.set(name, { name, files, revisions, gated: spec.gated ?? false });
  }
  const byLfsSha = new Map<string, FakeHubFile>();
  for (const r of repos.values()) for (const f of r.files.values()) if (f.lfs) byLfsSha.set(f.sha256, f);

  const requests: FakeHubRequest[] = [];
  const faults = opts.faults ?? {};
  let serverErrorsLeft = faults.serverErrors?.count ?? 0;
  let dropsLeft = faults.dropAfter ? (faults.dropAfter.times ?? 1) : 0;
  let stallsLeft = faults.stallAfter ? (faults.stallAfter.times ?? 1) : 0;
  let hangsLeft = faults.hang?.count ?? 0;
  let pausesLeft = faults.pauseAfter ? 1 : 0;
  let corruptLeft = faults.corrupt ? (faults.corrupt.times ?? Number.POSITIVE_INFINITY) : 0;
  const sockets = new Set<Socket>();

  const hubServer = createServer((req, res) => handle("hub", req, res));
  const cdnServer = opts.cdn === "same-origin" ? undefined : createServer((req, res) => handle("cdn", req, res));
  for (const s of [hubServer, cdnServer]) {
    s?.on("connection", (sock) => {
      sockets.add(sock);
      sock.on("close", () => sockets.delete(sock));
    });
  }
  const listen = (s: Server) =>
    new Promise<string>((resolve, reject) => {
      s.once("error", reject);
      s.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${(s.address() as AddressInfo).port}`));
    });
  const url = await listen(hubServer);
  const cdnUrl = cdnServer ? await listen(cdnServer) : url;

  function record(server: "hub" | "cdn", req: IncomingMessage, status: number): void {
    requests.push({
      server,
      method: req.method ?? "GET",
      url: req.url ?? "",
      authorization: req.headers.authorization,
      range: req.headers.range,
      status,
    });
  }

  function fail(
    server: "hub" | "cdn",
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    errorCode: string | undefined,
    message: string,
  ): void {
    record(server, req, status);
    const body = JSON.stringify({ error: message });
    const headers: Record<string, string | number> = { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) };
    if (errorCode) {
      headers["X-Error-Code"] = errorCode;
      headers["X-Error-Message"] = message;
    }
    res.writeHead(status, headers);
    res.end(req.method === "HEAD" ? undefined : body);
  }

  /** Returns an error to send, or undefined when the request may see the repo. */
  function authProblem(req: IncomingMessage, repo: RepoState): { status: number; code: string; message: string } | undefined {
    const required = opts.token ?? (repo.gated ? "" : undefined);
    if (required === undefined) return undefined;
    const auth = req.headers.authorization;
    if (!auth) {
      return { status: 401, code: repo.gated ? "GatedRepo" : "RepoNotFound", message: "Invalid credentials in Authorization header" };
    }
    if (required !== "" && auth !== `Bearer ${required}`) {
      return { status: 403, code: "GatedRepo", message: `Access to model ${repo.name} is restricted.` };
    }
    return undefined;
  }

  function resolveRev(repo: RepoState, rev: string): string | undefined {
    if (repo.revisions[rev]) return repo.revisions[rev];
    if (/^[0-9a-f]{40}$/.test(rev) && Object.values(repo.revisions).includes(rev)) return rev;
    return undefined;
  }

  function serveBytes(
    server: "hub" | "cdn",
    req: IncomingMessage,
    res: ServerResponse,
    file: FakeHubFile,
    extra: Record<string, string | number>,
  ): void {
    let bytes = file.bytes;
    const isGet = req.method !== "HEAD";
    if (isGet && faults.corrupt?.file === file.name && corruptLeft > 0) {
      corruptLeft--;
      bytes = Buffer.from(bytes);
      const i = Math.floor(bytes.length / 2);
      bytes[i] = (bytes[i] ?? 0) ^ 0xff;
    }
    let start = 0;
    let end = bytes.length - 1;
    let status = 200;
    const range = req.headers.range;
    if (range && !faults.ignoreRange) {
      const m = /^bytes=(\d+)-(\d*)$/.exec(range);
      if (!m) return fail(server, req, res, 400, undefined, `Bad Range header ${range}`);
      start = Number(m[1]);
      if (m[2]) end = Math.min(end, Number(m[2]));
      if (start >= bytes.length) {
        record(server, req, 416);
        res.writeHead(416, { "Content-Range": `bytes */${bytes.length}` });
        return void res.end();
      }
      status = 206;
    }
    const body = bytes.subarray(start, end + 1);
    const headers: Record<string, string | number> = {
      "Content-Type": "application/octet-stream",
      "Content-Length": body.length,
      "Accept-Ranges": "bytes",
      ...extra,
    };
    if (status === 206) headers["Content-Range"] = `bytes ${start}-${end}/${bytes.length}`;
    record(server, req, status);
    res.writeHead(status, headers);
    if (!isGet) return void res.end();
    if (faults.dropAfter?.file === file.name && dropsLeft > 0) {
      dropsLeft--;
      const k = Math.max(0, Math.min(body.length - 1, faults.dropAfter.bytes));
      // Send K bytes, then cut the socket mid-body: the client sees a premature close.
      res.write(body.subarray(0, k), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    if (faults.stallAfter?.file === file.name && stallsLeft > 0) {
      stallsLeft--;
      res.write(body.subarray(0, Math.max(0, Math.min(body.length - 1, faults.stallAfter.bytes))));
      return; // never ends; close() destroys the socket
    }
    if (faults.pauseAfter?.file === file.name && pausesLeft > 0) {
      pausesLeft--;
      const { bytes: k, ms, onPause } = faults.pauseAfter;
      res.write(body.subarray(0, k));
      setTimeout(() => res.end(body.subarray(k)), ms);
      onPause?.();
      return;
    }
    res.end(body);
  }

  function handle(server: "hub" | "cdn", req: IncomingMessage, res: ServerResponse): void {
    const u = new URL(req.url ?? "/", "http://x");
    const p = u.pathname;
    if (faults.hang && hangsLeft > 0 && (!faults.hang.match || faults.hang.match.test(p))) {
      hangsLeft--;
      record(server, req, 0);
      return; // no answer at all
    }
    if (faults.serverErrors && serverErrorsLeft > 0 && (!faults.serverErrors.match || faults.serverErrors.match.test(p))) {
      serverErrorsLeft--;
      return fail(
        server,
        req,
        res,
        faults.serverErrors.status ?? 500,
        undefined,
        "Internal Error - We're working hard to fix this as soon as possible!",
      );
    }
    if (req.method !== "GET" && req.method !== "HEAD") return fail(server, req, res, 405, undefined, "Method not allowed");

    const cdnMatch = /^\/cdn\/([0-9a-f]{64})$/.exec(p);
    if (cdnMatch && (server === "cdn" || opts.cdn === "same-origin")) {
      const f = byLfsSha.get(cdnMatch[1]!);
      if (!f) return fail(server, req, res, 404, undefined, "Not found");
      return serveBytes(server, req, res, f, { ETag: `"${f.sha256}"` });
    }
    if (server === "cdn") return fail(server, req, res, 404, undefined, "Not found");

    const api = /^\/api\/models\/(.+)\/revision\/([^/]+)$/.exec(p);
    if (api) {
      if (req.method !== "GET") return fail(server, req, res, 405, undefined, "Method not allowed");
      const repo = repos.get(decodeURIComponent(api[1]!));
      if (!repo)
        return fail(server, req, res, opts.token && !req.headers.authorization ? 401 : 404, "RepoNotFound", "Repository not found");
      const authErr = authProblem(req, repo);
      if (authErr) return fail(server, req, res, authErr.status, authErr.code, authErr.message);
      const rev = decodeURIComponent(api[2]!);
      const sha = resolveRev(repo, rev);
      if (!sha) return fail(server, req, res, 404, "RevisionNotFound", `Invalid rev id: ${rev}`);
      const blobs = u.searchParams.get("blobs") === "true";
      const siblings = [...repo.files.values()].map((f) =>
        blobs
          ? {
              rfilename: f.name,
              size: f.size,
              blobId: f.gitSha1,
              ...(f.lfs ? { lfs: { sha256: f.sha256, size: f.size, pointerSize: 134 } } : {}),
            }
          : { rfilename: f.name },
      );
      const body = JSON.stringify({
        _id: "fake",
        id: repo.name,
        modelId: repo.name,
        sha,
        private: false,
        gated: repo.gated ? "manual" : false,
        siblings,
      });
      record(server, req, 200);
      res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
      return void res.end(body);
    }

    const resolve = /^\/(.+?)\/resolve\/([^/]+)\/(.+)$/.exec(p);
    if (resolve) {
      const repo = repos.get(decodeURIComponent(resolve[1]!));
      if (!repo)
        return fail(server, req, res, opts.token && !req.headers.authorization ? 401 : 404, "RepoNotFound", "Repository not found");
      const authErr = authProblem(req, repo);
      if (authErr) return fail(server, req, res, authErr.status, authErr.code, authErr.message);
      const rev = decodeURIComponent(resolve[2]!);
      const sha = resolveRev(repo, rev);
      if (!sha) return fail(server, req, res, 404, "RevisionNotFound", `Invalid rev id: ${rev}`);
      const fname = decodeURIComponent(resolve[3]!);
      const f = repo.files.get(fname);
      if (!f) return fail(server, req, res, 404, "EntryNotFound", `${fname} does not exist on "${rev}"`);
      if (f.lfs) {
        record(server, req, 302);
        res.writeHead(302, {
          Location: `${cdnUrl}/cdn/${f.sha256}?X-Amz-Signature=fake&response-content-disposition=${encodeURIComponent(fname)}`,
          "X-Repo-Commit": sha,
          "X-Linked-Etag": `"${f.sha256}"`,
          "X-Linked-Size": String(f.size),
          ETag: `"${f.gitSha1}"`,
          "Content-Length": 0,
        });
        return void res.end();
      }
      return serveBytes(server, req, res, f, { ETag: `"${f.gitSha1}"`, "X-Repo-Commit": sha });
    }
    return fail(server, req, res, 404, undefined, "Not found");
  }

  const commits: Record<string, Record<string, string>> = {};
  const files: Record<string, Record<string, FakeHubFile>> = {};
  for (const r of repos.values()) {
    commits[r.name] = { ...r.revisions };
    files[r.name] = Object.fromEntries(r.files);
  }

  return {
    url,
    cdnUrl,
    requests,
    commits,
    files,
    close: async () => {
      for (const s of sockets) s.destroy();
      await Promise.all(
        [hubServer, cdnServer].filter((s): s is Server => s !== undefined).map((s) => new Promise<void>((r) => s.close(() => r()))),
      );
    },
  };
}
