/**
 * Device choice. "auto" tries CUDA (when its provider is installed), then WebGPU (unless the only
 * Vulkan drivers are software ones), then the CPU, and records why each skipped device was skipped.
 * A device asked for by name that cannot start is an error naming the cause: asking for a GPU and
 * silently getting the CPU would make every timing and every capacity plan wrong.
 */
import { PickrankError, invalidParameter, toPickrankError } from "@pickrank/contract";
import { cudaProviderMissing, DEVICE_REQUESTS, webgpuPreconditionMissing, type DeviceName, type DeviceRequest } from "./ort.ts";
import { softwareOnlyVulkan } from "./vulkan.ts";

/** Which device was asked for, which one runs the graphs, and for "auto" each device skipped and why. */
export interface DeviceReport {
  requested: DeviceRequest;
  chosen: DeviceName;
  /** `reason`: the whole story (what failed, what to install); `summary`: a few words for a status line. */
  skipped: { device: DeviceName; reason: string; summary: string }[];
}

export const AUTO_ORDER: readonly DeviceName[] = ["cuda", "webgpu", "cpu"];

export function parseDeviceRequest(value: unknown): DeviceRequest {
  if (typeof value === "string" && (DEVICE_REQUESTS as readonly string[]).includes(value)) return value as DeviceRequest;
  throw invalidParameter("device", `one of ${DEVICE_REQUESTS.join(", ")}`, value);
}

/**
 * Runs `open` on the requested device, or on the first device of AUTO_ORDER that starts.
 * `open` must release whatever it opened before throwing.
 */
export async function openOnDevice<T>(
  request: DeviceRequest,
  open: (device: DeviceName) => Promise<T>,
): Promise<{ value: T; report: DeviceReport }> {
  if (request !== "auto") {
    return { value: await open(request), report: { requested: request, chosen: request, skipped: [] } };
  }
  const skipped: DeviceReport["skipped"] = [];
  for (const device of AUTO_ORDER) {
    const missing = device === "cuda" ? cudaProviderMissing() : device === "webgpu" ? webgpuPreconditionMissing() : undefined;
    if (missing) {
      skipped.push({ device, reason: missing, summary: device === "cuda" ? "CUDA provider not installed" : "no Vulkan loader" });
      continue;
    }
    // Asked by name, a software driver is used; auto prefers the CPU provider to it.
    const software = device === "webgpu" ? softwareOnlyVulkan() : undefined;
    if (software) {
      skipped.push({ device, reason: software, summary: "only software Vulkan drivers" });
      continue;
    }
    try {
      const value = await open(device);
      return { value, report: { requested: "auto", chosen: device, skipped } };
    } catch (e) {
      const err = toPickrankError(e);
      // A broken model is broken on every device: do not hide it behind a fallback.
      if (err.code !== "DEVICE_UNAVAILABLE") throw err;
      const reason = err.message.replace(/^Cannot use device "[a-z]+": /, "");
      skipped.push({ device, reason, summary: reason.length > 60 ? `${reason.slice(0, 57)}...` : reason });
    }
  }
  throw new PickrankError(
    "DEVICE_UNAVAILABLE",
    `No device could run the model: ${skipped.map((s) => `${s.device}: ${s.reason}`).join("; ")}`,
    { details: { skipped } },
  );
}

/**
 * "device cpu (auto; skipped cuda: CUDA provider not installed, webgpu: no Vulkan loader)"; with
 * `verbose`, each skipped device's whole reason, including what to install.
 */
export function describeDeviceReport(r: DeviceReport, verbose = false): string {
  const head = `device ${r.chosen}`;
  if (r.requested !== "auto") return head;
  if (r.skipped.length === 0) return `${head} (auto)`;
  return `${head} (auto; skipped ${r.skipped.map((s) => `${s.device}: ${verbose ? s.reason : s.summary}`).join(", ")})`;
}
