/**
 * The Vulkan driver search behind `auto`'s "software drivers only" skip: the loader's search order
 * (explicit lists replace it, VK_ADD_DRIVER_FILES adds), what counts as software, and the rule that
 * only a positive finding of software-only drivers skips WebGPU.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { icdSearchDirs, softwareOnlyVulkan, vulkanIcds } from "../src/runtime/vulkan.ts";

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), "pickrank-vk-"));
});
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

function icd(dir: string, name: string, library: string): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, name);
  writeFileSync(file, JSON.stringify({ file_format_version: "1.0.0", ICD: { library_path: library, api_version: "1.3.0" } }));
  return file;
}

/** An environment whose default search finds only what the test puts under tmp. */
function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    XDG_CONFIG_HOME: path.join(tmp, "config"),
    XDG_CONFIG_DIRS: path.join(tmp, "etc-xdg"),
    XDG_DATA_HOME: path.join(tmp, "data"),
    XDG_DATA_DIRS: path.join(tmp, "share"),
    ...extra,
  };
}

const onlyUnder = (dirs: string[]) => dirs.filter((d) => d.startsWith(tmp));

describe("vulkanIcds", () => {
  it("searches the XDG config and data folders and /etc in the loader's order", () => {
    const dirs = icdSearchDirs(env(), path.join(tmp, "home"));
    expect(onlyUnder(dirs)).toEqual(["config", "etc-xdg", "data", "share"].map((d) => path.join(tmp, d, "vulkan", "icd.d")));
    expect(dirs).toContain("/etc/vulkan/icd.d");
    expect(icdSearchDirs({}, "/home/u")).toEqual([
      "/home/u/.config/vulkan/icd.d",
      "/etc/xdg/vulkan/icd.d",
      "/usr/local/etc/vulkan/icd.d",
      "/etc/vulkan/icd.d",
      "/home/u/.local/share/vulkan/icd.d",
      "/usr/local/share/vulkan/icd.d",
      "/usr/share/vulkan/icd.d",
    ]);
  });

  it("tells software drivers (lavapipe, SwiftShader) from GPU drivers", () => {
    const share = path.join(tmp, "share", "vulkan", "icd.d");
    icd(share, "lvp_icd.x86_64.json", "/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so");
    icd(share, "nvidia_icd.json", "libGLX_nvidia.so.0");
    icd(share, "radeon_icd.x86_64.json", "/usr/lib/x86_64-linux-gnu/libvulkan_radeon.so");
    writeFileSync(path.join(share, "broken.json"), "{ not json");
    writeFileSync(path.join(share, "README"), "not a manifest");
    const found = vulkanIcds(env(), tmp).filter((i) => i.manifest.startsWith(tmp));
    expect(found.map((i) => [path.basename(i.manifest), i.software])).toEqual([
      ["broken.json", false],
      ["lvp_icd.x86_64.json", true],
      ["nvidia_icd.json", false],
      ["radeon_icd.x86_64.json", false],
    ]);
  });

  it("VK_DRIVER_FILES (or the older VK_ICD_FILENAMES) replaces the search; VK_ADD_DRIVER_FILES adds to it", () => {
    const sw = icd(path.join(tmp, "chromium"), "vk_swiftshader_icd.json", "./libvk_swiftshader.so");
    const nv = icd(path.join(tmp, "nvidia"), "nvidia_icd.json", "libGLX_nvidia.so.0");
    icd(path.join(tmp, "share", "vulkan", "icd.d"), "radeon_icd.json", "libvulkan_radeon.so");
    expect(vulkanIcds(env({ VK_ICD_FILENAMES: sw }), tmp).map((i) => i.manifest)).toEqual([sw]);
    expect(vulkanIcds(env({ VK_DRIVER_FILES: path.dirname(nv), VK_ICD_FILENAMES: sw }), tmp).map((i) => i.manifest)).toEqual([nv]);
    expect(vulkanIcds(env({ VK_DRIVER_FILES: sw, VK_ADD_DRIVER_FILES: nv }), tmp).map((i) => i.manifest)).toEqual([sw, nv]);
  });
});

describe.runIf(process.platform === "linux")("softwareOnlyVulkan", () => {
  it("gives a reason only when every driver found is a software one", () => {
    const sw = icd(path.join(tmp, "chromium"), "vk_swiftshader_icd.json", "./libvk_swiftshader.so");
    const lvp = icd(path.join(tmp, "mesa"), "lvp_icd.json", "libvulkan_lvp.so");
    const nv = icd(path.join(tmp, "nvidia"), "nvidia_icd.json", "libGLX_nvidia.so.0");
    const why = softwareOnlyVulkan(env({ VK_DRIVER_FILES: `${sw}:${lvp}` }), tmp);
    expect(why).toMatch(
      /^the only Vulkan drivers installed are software ones \(libvk_swiftshader\.so, libvulkan_lvp\.so\).*--device webgpu/,
    );
    expect(softwareOnlyVulkan(env({ VK_DRIVER_FILES: `${sw}:${nv}` }), tmp)).toBeUndefined();
    // Nothing found: Dawn decides (a driver may sit where this search does not look).
    expect(softwareOnlyVulkan(env({ VK_DRIVER_FILES: path.join(tmp, "nowhere") }), tmp)).toBeUndefined();
  });
});
