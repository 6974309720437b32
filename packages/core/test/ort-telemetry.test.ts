/**
 * onnxruntime's telemetry stays off unless the user opts in. onnxruntime-node's native library writes a
 * device id and an event store naming the model files under ~/.cache/Microsoft/DeveloperTools/.onnxruntime/
 * on the first session of a process; runtime/ort.ts sets ORT_DISABLE_TELEMETRY=1 before any session
 * unless the user set it. The runtime reads the variable once per process, so each case is a child
 * process (two in all) with HOME pointing at an empty temp folder and the CI variables with which
 * onnxruntime turns telemetry off by itself removed.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { disableOrtTelemetryUnlessOptedIn, ORT_TELEMETRY_ENV } from "../src/runtime/ort.ts";
import { removeTinyModels, tinyModel } from "../../../test/helpers/tiny-model.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const CI_VARS = [
  // onnxruntime also turns telemetry off when CI is set (as .ci/run sets it): too short for `strings` to show.
  "CI",
  "TF_BUILD",
  "GITHUB_ACTIONS",
  "GITLAB_CI",
  "CIRCLECI",
  "TRAVIS",
  "JENKINS_URL",
  "CODEBUILD_BUILD_ID",
  "BUILDKITE",
  "TEAMCITY_VERSION",
  "APPVEYOR",
  "BITBUCKET_BUILD_NUMBER",
  "ORT_RUNNING_UNIT_TESTS",
];

let tmp: string;
let textGraph: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-telemetry-"));
  textGraph = path.join(await tinyModel(), "text.onnx");
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
  await removeTinyModels();
});

/** Every file under a folder, relative paths. */
async function files(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((d) => d.isFile())
    .map((d) => path.relative(dir, path.join(d.parentPath, d.name)))
    .sort();
}

/** Opens one session in a child process whose home is a fresh folder; returns what it printed and the folder. */
async function sessionIn(
  name: string,
  telemetry: string | undefined,
): Promise<{ home: string; out: { off: boolean; value: string | null } }> {
  const home = path.join(tmp, name);
  await rm(home, { recursive: true, force: true });
  await mkdir(home);
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, USERPROFILE: home };
  delete env.XDG_CACHE_HOME;
  delete env[ORT_TELEMETRY_ENV];
  for (const v of CI_VARS) delete env[v];
  if (telemetry !== undefined) env[ORT_TELEMETRY_ENV] = telemetry;
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--conditions=development", "--import", "tsx", path.join(here, "ort-telemetry-child.ts"), textGraph],
    { env, cwd: here },
  );
  return { home, out: JSON.parse(stdout.trim().split("\n").at(-1)!) as { off: boolean; value: string | null } };
}

describe("onnxruntime telemetry", () => {
  it("creating a session writes nothing under HOME by default", async () => {
    const { home, out } = await sessionIn("default", undefined);
    expect(out).toEqual({ off: true, value: "1" });
    expect(await files(home)).toEqual([]);
  });

  it("with ORT_DISABLE_TELEMETRY=0 (opted in) onnxruntime writes its device id and event store, as it does on its own", async () => {
    const { home, out } = await sessionIn("opted-in", "0");
    expect(out).toEqual({ off: false, value: "0" });
    const dir = path.join(".cache", "Microsoft", "DeveloperTools", ".onnxruntime");
    // Whatever this onnxruntime version writes there; 1.30 on Linux writes these two.
    expect(await files(home)).toEqual([path.join(dir, "deviceid"), path.join(dir, "onnxruntime.db")]);
  });

  it("disableOrtTelemetryUnlessOptedIn: unset or empty → 1; a user's value is kept and read as onnxruntime reads it", () => {
    const cases: [string | undefined, string, boolean][] = [
      [undefined, "1", true],
      ["", "1", true],
      ["0", "0", false],
      ["false", "false", false],
      ["true", "true", true],
      ["YES", "YES", true],
    ];
    for (const [given, kept, off] of cases) {
      const env: NodeJS.ProcessEnv = given === undefined ? {} : { [ORT_TELEMETRY_ENV]: given };
      expect(disableOrtTelemetryUnlessOptedIn(env), String(given)).toBe(off);
      expect(env[ORT_TELEMETRY_ENV]).toBe(kept);
    }
  });
});
