/**
 * A fake Automatic1111 (also Forge / SD.Next) API that behaves like modules/api/api.py: txt2img runs
 * one request at a time behind a lock, seeds are seed + k over batch_size × n_iter, the response is
 * { images: base64[], parameters, info: JSON string with all_seeds, all_prompts, index_of_first_image … }
 * with a grid image first when there is more than one image (opts.return_grid), /sdapi/v1/progress
 * reports shared.state, /sdapi/v1/interrupt stops the current job after the current step, --api-auth is
 * HTTP Basic, and errors are A1111's JSON { error, detail, body, errors } (FastAPI's 422 shape for bad
 * request bodies). Images are the same deterministic PNGs as the fake ComfyUI's (seed, prompt, batch index).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { fakePng } from "./comfyui-server.ts";

export type A1111Route = "txt2img" | "progress" | "interrupt" | "options" | "sd-models" | "samplers";

export interface FakeA1111Options {
  /** --api-auth user:password */
  auth?: { username: string; password: string };
  /** Delay of one sampling step in ms (default 1). */
  stepDelayMs?: number;
  /** Images are scaled down to at most this side (default 64). */
  maxImageSide?: number;
  /** opts.return_grid (default true): a grid image first when a request makes more than one image. */
  returnGrid?: boolean;
  models?: string[];
  faults?: {
    /** Routes that never answer. */
    hang?: A1111Route[];
    /** Routes that answer 200 with something unreadable. */
    garbage?: A1111Route[];
    /** Requests whose seeds include one of these fail with a 500 (CUDA out of memory). */
    failSeeds?: number[];
    /** The k-th txt2img request (1-based) kills the server halfway through its render. */
    killOnRequest?: number;
  };
}

export interface FakeA1111 {
  url: string;
  port: number;
  /** txt2img bodies received, in order. */
  requests: Record<string, unknown>[];
  /** Every HTTP request: method, path, Authorization header. */
  log: { method: string; path: string; authorization: string | undefined }[];
  interrupts: number;
  /** Most txt2img requests waiting or running at once. */
  maxInFlight: number;
  kill(): Promise<void>;
  close(): Promise<void>;
}

const SAMPLERS = ["DPM++ 2M", "DPM++ SDE", "Euler a", "Euler", "DDIM", "UniPC"];

export async function startFakeA1111(opts: FakeA1111Options = {}): Promise<FakeA1111> {
  const stepDelay = opts.stepDelayMs ?? 1;
  const maxSide = opts.maxImageSide ?? 64;
  const faults = opts.faults ?? {};
  const hang = new Set(faults.hang ?? []);
  const garbage = new Set(faults.garbage ?? []);
  const models = opts.models ?? ["v1-5-pruned-emaonly.safetensors [6ce0161689]", "sd_xl_base_1.0.safetensors [31e35c80fc]"];
  const hanging = new Set<http.ServerResponse>();
  let lock: Promise<void> = Promise.resolve();
  let inFlight = 0;
  let dead = false;
  let currentModel = models[0]!;
  const st = {
    skipped: false,
    interrupted: false,
    stopping_generation: false,
    job: "",
    job_count: 0,
    job_timestamp: "0",
    job_no: 0,
    sampling_step: 0,
    sampling_steps: 0,
  };

  const state: FakeA1111 = {
    url: "",
    port: 0,
    requests: [],
    log: [],
    interrupts: 0,
    maxInFlight: 0,
    kill: async () => {
      if (dead) return;
      dead = true;
      for (const r of hanging) r.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
    close: () => state.kill(),
  };

  const json = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  };
  /** api_middleware's handle_exception shape. */
  const apiError = (
    res: http.ServerResponse,
    status: number,
    error: string,
    detail: string,
    errors: string,
    headers?: Record<string, string>,
  ): void => json(res, status, { error, detail, body: "", errors }, headers);

  async function txt2img(res: http.ServerResponse, body: Record<string, unknown>): Promise<void> {
    // FastAPI validation (422) before anything runs.
    const problems: unknown[] = [];
    for (const k of ["steps", "batch_size", "n_iter", "width", "height", "seed"]) {
      if (k in body && (typeof body[k] !== "number" || !Number.isInteger(body[k]))) {
        problems.push({
          type: "int_parsing",
          loc: ["body", k],
          msg: "Input should be a valid integer, unable to parse string as an integer",
          input: body[k],
        });
      }
    }
    if (problems.length > 0) return json(res, 422, { detail: problems });
    const sampler = String(body.sampler_name ?? "Euler a");
    if (!SAMPLERS.includes(sampler)) return apiError(res, 404, "HTTPException", "Sampler not found", "404: Sampler not found");
    state.requests.push(body);
    const requestNo = state.requests.length;
    inFlight++;
    state.maxInFlight = Math.max(state.maxInFlight, inFlight);
    let release!: () => void;
    const prev = lock;
    lock = new Promise((r) => (release = r));
    await prev; // queue_lock: one generation at a time
    try {
      const batch = Number(body.batch_size ?? 1);
      const iters = Number(body.n_iter ?? 1);
      const steps = Number(body.steps ?? 20);
      let seed = Number(body.seed ?? -1);
      if (seed === -1) seed = Math.floor(Math.random() * 4294967294);
      const count = batch * iters;
      const allSeeds = Array.from({ length: count }, (_, i) => seed + i);
      const prompt = String(body.prompt ?? "");
      const negative = String(body.negative_prompt ?? "");
      const w = Number(body.width ?? 512);
      const h = Number(body.height ?? 512);
      const override = (body.override_settings ?? {}) as { sd_model_checkpoint?: string };
      const model = override.sd_model_checkpoint ?? currentModel;
      Object.assign(st, {
        interrupted: false,
        skipped: false,
        job: "txt2img",
        job_count: iters,
        job_no: 0,
        job_timestamp: String(Date.now()),
        sampling_step: 0,
        sampling_steps: steps,
      });
      if (faults.failSeeds?.some((s) => allSeeds.includes(s))) {
        return apiError(
          res,
          500,
          "OutOfMemoryError",
          "",
          "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)",
        );
      }
      const scale = Math.min(1, maxSide / Math.max(w, h));
      const pw = Math.max(1, Math.round(w * scale));
      const ph = Math.max(1, Math.round(h * scale));
      const images: Buffer[] = [];
      for (let it = 0; it < iters && !st.interrupted; it++) {
        st.job_no = it;
        for (let s = 1; s <= steps; s++) {
          await new Promise((r) => setTimeout(r, stepDelay));
          if (dead) return;
          if (faults.killOnRequest === requestNo && s >= Math.ceil(steps / 2)) {
            void state.kill();
            return;
          }
          st.sampling_step = s;
          if (st.interrupted) break;
        }
        if (st.interrupted) break;
        for (let b = 0; b < batch; b++) {
          const k = it * batch + b;
          images.push(fakePng({ seed: allSeeds[k]!, prompt, negative, batchIndex: 0, width: pw, height: ph }));
        }
      }
      let indexOfFirst = 0;
      const infotexts = allSeeds.map(
        (s) => `${prompt}\nNegative prompt: ${negative}\nSteps: ${steps}, Sampler: ${sampler}, Seed: ${s}, Model: ${model.split(" ")[0]}`,
      );
      if (images.length > 1 && opts.returnGrid !== false) {
        images.unshift(fakePng({ seed: 0, prompt: "grid", batchIndex: 0, width: pw * 2, height: ph }));
        // processing.py inserts the grid's infotext first too.
        infotexts.unshift(`${prompt}\nNegative prompt: ${negative}\nSteps: ${steps}, Sampler: ${sampler}, Seed: ${seed}, Grid`);
        indexOfFirst = 1;
      }
      const info = {
        prompt,
        all_prompts: allSeeds.map(() => prompt),
        negative_prompt: negative,
        all_negative_prompts: allSeeds.map(() => negative),
        seed,
        all_seeds: allSeeds,
        subseed: 1234,
        all_subseeds: allSeeds.map((_, i) => 1234 + i),
        subseed_strength: 0,
        width: w,
        height: h,
        sampler_name: sampler,
        cfg_scale: body.cfg_scale ?? 7,
        steps,
        batch_size: batch,
        restore_faces: false,
        face_restoration_model: null,
        sd_model_name: model.split(" ")[0]?.replace(/\.safetensors$/, ""),
        sd_model_hash: "6ce0161689",
        sd_vae_name: null,
        sd_vae_hash: null,
        seed_resize_from_w: -1,
        seed_resize_from_h: -1,
        denoising_strength: null,
        extra_generation_params: {},
        index_of_first_image: indexOfFirst,
        infotexts,
        styles: [],
        job_timestamp: st.job_timestamp,
        clip_skip: 1,
        is_using_inpainting_conditioning: false,
        version: "v1.10.1",
      };
      const parameters = {
        prompt,
        negative_prompt: negative,
        seed: Number(body.seed ?? -1),
        batch_size: batch,
        n_iter: iters,
        steps,
        sampler_name: sampler,
        width: w,
        height: h,
        ...body,
      };
      json(res, 200, { images: images.map((i) => i.toString("base64")), parameters, info: JSON.stringify(info) });
    } finally {
      inFlight--;
      Object.assign(st, { job: "", job_count: 0, sampling_step: 0, sampling_steps: 0 });
      release();
    }
  }

  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? "/", "http://fake");
    state.log.push({ method: req.method ?? "", path: u.pathname, authorization: req.headers.authorization });
    if (opts.auth) {
      const expected = `Basic ${Buffer.from(`${opts.auth.username}:${opts.auth.password}`).toString("base64")}`;
      if (req.headers.authorization === undefined) return json(res, 401, { detail: "Not authenticated" }, { "www-authenticate": "Basic" });
      if (req.headers.authorization !== expected)
        return apiError(res, 401, "HTTPException", "Incorrect username or password", "401: Incorrect username or password", {
          "www-authenticate": "Basic",
        });
    }
    const route = (u.pathname.startsWith("/sdapi/v1/") ? u.pathname.slice("/sdapi/v1/".length) : "") as A1111Route;
    if (hang.has(route)) {
      hanging.add(res);
      return;
    }
    if (garbage.has(route)) {
      res.writeHead(200, { "content-type": "text/html" });
      res.end("<!DOCTYPE html><html><body>Gradio is loading…</body></html>");
      return;
    }
    const parts: Buffer[] = [];
    req.on("data", (d: Buffer) => parts.push(d));
    req.on("end", () => {
      const text = Buffer.concat(parts).toString("utf8");
      let body: Record<string, unknown> = {};
      if (text !== "") {
        try {
          body = JSON.parse(text) as Record<string, unknown>;
        } catch {
          return json(res, 422, { detail: [{ type: "json_invalid", loc: ["body", 0], msg: "JSON decode error" }] });
        }
      }
      if (req.method === "POST" && route === "txt2img") {
        txt2img(res, body).catch((e: Error) => apiError(res, 500, e.name, "", e.message));
        return;
      }
      if (req.method === "GET" && route === "progress") {
        const frac = st.job_count > 0 && st.sampling_steps > 0 ? (st.job_no + st.sampling_step / st.sampling_steps) / st.job_count : 0;
        return json(res, 200, { progress: frac, eta_relative: frac > 0 ? 0.5 : 0, state: { ...st }, current_image: null, textinfo: null });
      }
      if (req.method === "POST" && route === "interrupt") {
        state.interrupts++;
        if (st.job !== "") st.interrupted = true;
        return json(res, 200, {});
      }
      if (req.method === "GET" && route === "options")
        return json(res, 200, {
          sd_model_checkpoint: currentModel,
          samples_format: "png",
          return_grid: opts.returnGrid !== false,
          CLIP_stop_at_last_layers: 1,
        });
      if (req.method === "POST" && route === "options") {
        if (typeof body.sd_model_checkpoint === "string") currentModel = body.sd_model_checkpoint;
        return json(res, 200, null);
      }
      if (req.method === "GET" && route === "sd-models") {
        return json(
          res,
          200,
          models.map((title) => {
            const filename = title.split(" ")[0]!;
            return {
              title,
              model_name: filename.replace(/\.safetensors$/, ""),
              hash: "6ce0161689",
              sha256: "6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa",
              filename: `/models/Stable-diffusion/${filename}`,
              config: null,
            };
          }),
        );
      }
      if (req.method === "GET" && route === "samplers")
        return json(
          res,
          200,
          SAMPLERS.map((name) => ({ name, aliases: [], options: {} })),
        );
      json(res, 404, { detail: "Not Found" });
    });
  });

  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  state.port = (server.address() as AddressInfo).port;
  state.url = `http://127.0.0.1:${state.port}`;
  return state;
}
