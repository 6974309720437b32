/**
 * Which Vulkan drivers (ICDs) the Vulkan loader would find on Linux, so `auto` can tell a GPU from a
 * software rasterizer before starting WebGPU. Dawn accepts a CPU adapter (SwiftShader; lavapipe in
 * newer Mesa) when no GPU is there, and WebGPU on it is hundreds of times slower than onnxruntime's
 * own CPU provider (8 images through a small random CLIP: 7.5 s on SwiftShader, 23 ms on the CPU
 * provider). The search follows the loader's documented order (LoaderDriverInterface.md):
 * VK_DRIVER_FILES / VK_ICD_FILENAMES replace the search, VK_ADD_DRIVER_FILES adds to it, else the XDG
 * config and data folders and /etc.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";

export interface VulkanIcd {
  manifest: string;
  /** `ICD.library_path` as written (a name, or a path relative to the manifest). */
  library: string;
  /** A CPU implementation: Mesa's lavapipe (llvmpipe) or SwiftShader. */
  software: boolean;
}

const SOFTWARE_LIBRARY = /(^|[/_-])(lvp|lavapipe|llvmpipe|swiftshader)([._-]|$)/i;

function splitList(v: string | undefined): string[] {
  return (v ?? "").split(":").filter(Boolean);
}

function manifestsIn(p: string): string[] {
  try {
    const st = statSync(p);
    if (st.isFile()) return [p];
    if (!st.isDirectory()) return [];
    return readdirSync(p)
      .filter((n) => n.endsWith(".json"))
      .sort()
      .map((n) => path.join(p, n));
  } catch {
    return [];
  }
}

/** The folders the loader searches when no VK_DRIVER_FILES / VK_ICD_FILENAMES is set. */
export function icdSearchDirs(env: NodeJS.ProcessEnv = process.env, home = os.homedir()): string[] {
  const configHome = env.XDG_CONFIG_HOME || path.join(home, ".config");
  const configDirs = splitList(env.XDG_CONFIG_DIRS).length ? splitList(env.XDG_CONFIG_DIRS) : ["/etc/xdg"];
  const dataHome = env.XDG_DATA_HOME || path.join(home, ".local", "share");
  const dataDirs = splitList(env.XDG_DATA_DIRS).length ? splitList(env.XDG_DATA_DIRS) : ["/usr/local/share", "/usr/share"];
  return [configHome, ...configDirs, "/usr/local/etc", "/etc", dataHome, ...dataDirs].map((d) => path.join(d, "vulkan", "icd.d"));
}

/** Every ICD manifest the loader would read, with its library and whether it is a software driver. */
export function vulkanIcds(env: NodeJS.ProcessEnv = process.env, home = os.homedir()): VulkanIcd[] {
  const explicit = splitList(env.VK_DRIVER_FILES).length ? splitList(env.VK_DRIVER_FILES) : splitList(env.VK_ICD_FILENAMES);
  const places = [...(explicit.length ? explicit : icdSearchDirs(env, home)), ...splitList(env.VK_ADD_DRIVER_FILES)];
  const seen = new Set<string>();
  const out: VulkanIcd[] = [];
  for (const manifest of places.flatMap(manifestsIn)) {
    if (seen.has(manifest)) continue;
    seen.add(manifest);
    let library = "";
    try {
      const json = JSON.parse(readFileSync(manifest, "utf8")) as { ICD?: { library_path?: unknown } };
      if (typeof json.ICD?.library_path === "string") library = json.ICD.library_path;
    } catch {
      // Unreadable: the loader skips it too; counted as unknown (not software) below.
    }
    out.push({ manifest, library, software: library !== "" && SOFTWARE_LIBRARY.test(path.basename(library)) });
  }
  return out;
}

/**
 * Why `auto` should not pick WebGPU: every Vulkan driver found is a software one. Undefined when a
 * hardware (or unknown) driver is there, or when none is found (then Dawn has the last word).
 */
export function softwareOnlyVulkan(env: NodeJS.ProcessEnv = process.env, home = os.homedir()): string | undefined {
  if (process.platform !== "linux") return undefined;
  const icds = vulkanIcds(env, home);
  if (icds.length === 0 || !icds.every((i) => i.software)) return undefined;
  const names = [...new Set(icds.map((i) => path.basename(i.library)))].join(", ");
  return (
    `the only Vulkan drivers installed are software ones (${names}), where WebGPU runs on the CPU far slower than the CPU provider; ` +
    `install your GPU's Vulkan driver, or ask for --device webgpu to use them anyway`
  );
}
