/**
 * The one module that owns onnxruntime-node. Everything else in pickrank sees `GraphSession` and
 * `TensorData`, so a second runtime (onnxruntime-web, a Python bridge) would replace this file only.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import type * as ort from "onnxruntime-node";
import { PickrankError, throwIfAborted } from "@pickrank/contract";
import { gpuSessionThread, openWorkerSession, type SessionThread } from "./session-thread.ts";

/** An ONNX Runtime execution provider pickrank can run the graphs on. */
export type DeviceName = "cpu" | "webgpu" | "cuda";
/** The device asked for: a DeviceName, or "auto" (the first of cuda, webgpu, cpu that starts). */
export type DeviceRequest = "auto" | DeviceName;
export const DEVICE_REQUESTS: readonly DeviceRequest[] = ["auto", "cpu", "webgpu", "cuda"];

export type TensorData =
  | { type: "float32"; data: Float32Array; dims: readonly number[] }
  | { type: "int64"; data: BigInt64Array; dims: readonly number[] };

/** How one session is created inside the thread that owns it. */
export interface LocalSessionOptions {
  /** Threads for the CPU provider (intra-op). Default: onnxruntime's choice (all cores). */
  threads?: number;
  /**
   * CPU provider: false sets onnxruntime's `session.disable_prepacking`, so MLAS packs the MatMul
   * weights as each run needs them instead of all at load. Measured on the PickScore-sized model
   * (docs/benchmarks.md): sessions ready in 1.9 s instead of 32.4 s (loaded machine), the first score
   * sooner (29.6 s against 56.2 s), but each later run ≈1.36× longer. Default true (packed at load).
   */
  prepackWeights?: boolean;
  /**
   * Where onnxruntime writes the graph as it runs it, after its optimizations and fusions (session option
   * optimizedModelFilePath), for inspection: the tests count its op types. Every provider honours it.
   */
  optimizedModelFile?: string;
}

/** Options of openSession: the CPU provider's threads, and which thread owns the session. */
export interface SessionOptions extends LocalSessionOptions {
  /**
   * "worker" (the default): the session lives on a worker thread of its own (session-thread.ts), so its
   * load and its runs leave this thread's event loop free, and several sessions load at once. "main":
   * on the calling thread, which onnxruntime-node blocks while it loads the graph and while it runs it.
   */
  thread?: "worker" | "main";
  /**
   * With thread "worker": the SessionThread to open it on. Default: for the CPU a new thread of its own;
   * for a GPU provider the process's one GPU thread (gpuSessionThread).
   */
  host?: SessionThread | undefined;
}

/** Per-run options: a signal that rejects the run with ABORTED (the graph itself finishes, unseen). */
export interface RunOptions {
  signal?: AbortSignal | undefined;
}

/**
 * One loaded ONNX graph. `run` takes and returns named tensors (INFERENCE_FAILED when onnxruntime fails,
 * ABORTED when `signal` fires first, INTERNAL after release); `release` frees it, after the runs already
 * asked for (idempotent).
 */
export interface GraphSession {
  readonly device: DeviceName;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, TensorData>, opts?: RunOptions): Promise<Record<string, TensorData>>;
  release(): Promise<void>;
}

const require = createRequire(import.meta.url);

let ortModule: Promise<typeof ort> | undefined;

/**
 * onnxruntime-node, imported on first use: loading pickrank (or running `pickrank --help`) does not
 * load the native runtime. Rejects as the import does (a missing or broken install).
 */
function loadOrt(): Promise<typeof ort> {
  return (ortModule ??= import("onnxruntime-node"));
}

/**
 * The variable onnxruntime reads to turn its telemetry off. onnxruntime-node 1.30's native library
 * (libonnxruntime) carries a 1DS telemetry client: on the first session it writes a device id and an
 * event store (`deviceid`, `onnxruntime.db`) under `$XDG_CACHE_HOME` or `~/.cache`, in
 * `Microsoft/DeveloperTools/.onnxruntime/`, recording among other things the model file names and the
 * execution providers, and warns on every command when that folder cannot be written (a read-only
 * home). The JS package and its binding offer no option for it (`binding.initOrtOnce` takes a log
 * level only); this variable, read once when the first session starts the runtime, is the switch
 * (1, true, yes, on or y, any case, turn telemetry off; any other value, "0" for one, leaves it on;
 * onnxruntime also turns it off by itself on CI runners: GITHUB_ACTIONS, TF_BUILD, GITLAB_CI …).
 * Measured on Linux x64; on Windows onnxruntime reports through ETW instead.
 */
export const ORT_TELEMETRY_ENV = "ORT_DISABLE_TELEMETRY";

/**
 * pickrank keeps onnxruntime's telemetry off unless the user opted in: when ORT_DISABLE_TELEMETRY is
 * unset or empty it is set to "1" for this process (native code reads the process environment, which
 * Node's `process.env` writes through to), before any session exists. `ORT_DISABLE_TELEMETRY=0` opts in.
 * Returns whether telemetry stays off, by onnxruntime's own reading of the value.
 */
export function disableOrtTelemetryUnlessOptedIn(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env[ORT_TELEMETRY_ENV];
  if (v === undefined || v.trim() === "") env[ORT_TELEMETRY_ENV] = "1";
  return /^(1|true|yes|on|y)$/i.test(env[ORT_TELEMETRY_ENV]!.trim());
}

// At import, before anything can create a session (the runtime reads the variable once, then never again).
disableOrtTelemetryUnlessOptedIn();

/** Folder of onnxruntime-node's native binaries for this platform, where provider libraries live. */
export function ortBinaryDir(): string {
  const pkgDir = path.dirname(require.resolve("onnxruntime-node/package.json"));
  return path.join(pkgDir, "bin", "napi-v6", process.platform, process.arch);
}

/**
 * Why the CUDA provider cannot be used, or undefined when its library is present. onnxruntime-node
 * does not bundle it: its install script fetches it (CUDA 12 builds) from NuGet, which pnpm skips
 * unless the package's build is allowed. See the README, "GPU".
 */
export function cudaProviderMissing(): string | undefined {
  if (process.platform !== "linux" && process.platform !== "win32") {
    return `onnxruntime-node has no CUDA provider for ${process.platform}`;
  }
  const lib = process.platform === "win32" ? "onnxruntime_providers_cuda.dll" : "libonnxruntime_providers_cuda.so";
  const file = path.join(ortBinaryDir(), lib);
  if (!existsSync(file)) {
    return `the CUDA execution provider is not installed (${file} is missing); install it with ONNXRUNTIME_NODE_INSTALL=cuda12 (see the README, "GPU")`;
  }
  return undefined;
}

let vulkanCache: string | undefined | null = null;

/**
 * Why the WebGPU provider cannot start, when that is knowable without starting it. On Linux, Dawn
 * runs over Vulkan: without the loader library it fails anyway, after printing a warning of its own,
 * so say so up front and say what to install.
 */
export function webgpuPreconditionMissing(): string | undefined {
  if (process.platform !== "linux") return undefined;
  if (vulkanCache !== null) return vulkanCache;
  vulkanCache = findVulkanLoader()
    ? undefined
    : "the Vulkan loader (libvulkan.so.1) is not installed; WebGPU on Linux runs over Vulkan: install libvulkan1 and your GPU's Vulkan driver";
  return vulkanCache;
}

function findVulkanLoader(): boolean {
  const dirs = [
    ...(process.env.LD_LIBRARY_PATH ?? "").split(":").filter(Boolean),
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
  ];
  if (dirs.some((d) => existsSync(path.join(d, "libvulkan.so.1")))) return true;
  try {
    return /libvulkan\.so\.1\b/.test(
      execFileSync("ldconfig", ["-p"], { encoding: "utf8", timeout: 2000, stdio: ["ignore", "pipe", "ignore"] }),
    );
  } catch {
    return false;
  }
}

function providerOptions(device: DeviceName): ort.InferenceSession.ExecutionProviderConfig[] {
  switch (device) {
    case "cpu":
      return ["cpu"];
    case "webgpu":
      // Nodes the WebGPU provider lacks fall back to the CPU provider inside the same session.
      return ["webgpu", "cpu"];
    case "cuda":
      return ["cuda", "cpu"];
  }
}

/** First line of onnxruntime's message, without its source-file prefix, for readable errors. */
export function shortOrtMessage(e: unknown): string {
  const raw = e instanceof Error ? e.message : String(e);
  const line = raw.split("\n").find((l) => l.trim() !== "") ?? raw;
  // "/onnxruntime_src/…/webgpu_context.cc:136 …::<lambda()> cond was false. Failed to get a WebGPU adapter: …"
  const m = /was false\.\s*(.*)$/.exec(line);
  return (m?.[1] ?? line.replace(/^\/onnxruntime_src\/\S+\s+/, "")).trim();
}

/**
 * Opens an ONNX graph on a device, by default on a worker thread of its own (`opts.thread`). Throws
 * BAD_MODEL (a missing or unreadable graph, naming the file), DEVICE_UNAVAILABLE (the provider cannot
 * start: what is missing and what to install), INTERNAL (the worker thread failed).
 */
export async function openSession(file: string, device: DeviceName, opts: SessionOptions = {}): Promise<GraphSession> {
  const { thread = "worker", host, ...local } = opts;
  if (thread === "main") return openLocalSession(file, device, local);
  // Checked here too, so these errors need no thread.
  if (!existsSync(file)) {
    throw new PickrankError("BAD_MODEL", `Expected an ONNX graph at ${file} but the file does not exist`);
  }
  return openWorkerSession(file, device, local, host ?? (device === "cpu" ? undefined : gpuSessionThread()));
}

/**
 * Opens an ONNX graph on a device on the calling thread (which onnxruntime-node blocks while it loads
 * and while it runs). Same errors as openSession, INTERNAL excepted.
 */
export async function openLocalSession(file: string, device: DeviceName, opts: LocalSessionOptions = {}): Promise<GraphSession> {
  if (!existsSync(file)) {
    throw new PickrankError("BAD_MODEL", `Expected an ONNX graph at ${file} but the file does not exist`);
  }
  const missing = device === "cuda" ? cudaProviderMissing() : device === "webgpu" ? webgpuPreconditionMissing() : undefined;
  if (missing) throw new PickrankError("DEVICE_UNAVAILABLE", `Cannot use device "${device}": ${missing}`);
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: providerOptions(device),
    graphOptimizationLevel: "all",
    // Provider failures come back to us as exceptions; keep onnxruntime's own logger quiet.
    logSeverityLevel: 3,
  };
  if (opts.threads !== undefined) options.intraOpNumThreads = opts.threads;
  if (opts.prepackWeights === false && device === "cpu") options.extra = { session: { disable_prepacking: "1" } };
  if (opts.optimizedModelFile !== undefined) options.optimizedModelFilePath = opts.optimizedModelFile;
  const rt = await loadOrt();
  let session: ort.InferenceSession;
  try {
    session = await rt.InferenceSession.create(file, options);
  } catch (e) {
    const msg = shortOrtMessage(e);
    if (device === "webgpu" && /requires f16 but the device does not support it/i.test(msg)) {
      // Adapters without the shader-f16 feature (software drivers, some older GPUs) cannot run fp16 graphs.
      throw new PickrankError(
        "DEVICE_UNAVAILABLE",
        `Cannot use device "webgpu" for ${path.basename(file)}: this GPU adapter has no shader-f16 support, which an fp16 model needs (${msg}); ` +
          `expected an adapter with shader-f16, or use an fp32 model (pickrank model pull --dtype fp32) or another device`,
        { cause: e, details: { file, device, reason: "no-shader-f16" } },
      );
    }
    if (/provider|adapter|cuda|webgpu|vulkan|shared library|dawn/i.test(msg) && device !== "cpu") {
      throw new PickrankError("DEVICE_UNAVAILABLE", `Cannot use device "${device}": ${msg}`, { cause: e });
    }
    throw new PickrankError("BAD_MODEL", `onnxruntime could not load ${path.basename(file)} on ${device}: ${msg}`, {
      cause: e,
      details: { file, device },
    });
  }
  return wrap(rt, session, device, file);
}

function wrap(rt: typeof ort, session: ort.InferenceSession, device: DeviceName, file: string): GraphSession {
  let released = false;
  return {
    device,
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    async run(feeds, opts = {}) {
      throwIfAborted(opts.signal, "scoring");
      if (released) throw new PickrankError("INTERNAL", `Session for ${path.basename(file)} was already released`);
      const ortFeeds: Record<string, ort.Tensor> = {};
      for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = new rt.Tensor(t.type, t.data, t.dims);
      let out: ort.InferenceSession.ReturnType;
      try {
        out = await session.run(ortFeeds);
      } catch (e) {
        throw new PickrankError(
          "INFERENCE_FAILED",
          `onnxruntime failed running ${path.basename(file)} on ${device}: ${shortOrtMessage(e)}`,
          {
            cause: e,
          },
        );
      }
      const result: Record<string, TensorData> = {};
      for (const [name, t] of Object.entries(out)) {
        if (t.type === "float32") result[name] = { type: "float32", data: t.data as Float32Array, dims: t.dims };
        else if (t.type === "int64") result[name] = { type: "int64", data: t.data as BigInt64Array, dims: t.dims };
        else throw new PickrankError("BAD_MODEL", `Expected float32 or int64 output ${name} from ${path.basename(file)} but got ${t.type}`);
      }
      return result;
    },
    async release() {
      if (released) return;
      released = true;
      await session.release();
    },
  };
}
