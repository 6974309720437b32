import { InvalidArgumentError } from "commander";
import { invalidParameter } from "@pickrank/contract";

const DEVICES = ["auto", "cpu", "webgpu", "cuda"] as const;
export type DeviceOption = (typeof DEVICES)[number];

export function parseDevice(v: string): DeviceOption {
  if ((DEVICES as readonly string[]).includes(v)) return v as DeviceOption;
  throw new InvalidArgumentError(`Expected one of ${DEVICES.join(", ")} but received ${JSON.stringify(v)}.`);
}

export function parsePositiveInt(v: string): number {
  const n = Number(v);
  if (!/^\s*\d+\s*$/.test(v) || !Number.isInteger(n) || n <= 0) {
    throw new InvalidArgumentError(`Expected a positive integer but received ${JSON.stringify(v)}.`);
  }
  return n;
}

/** A repeatable flag's parser: each occurrence appended (`--url a --url b` → ["a", "b"]). */
export const collect = (v: string, prev: string[]): string[] => [...prev, v];

function positive(v: string, what: string): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError(`Expected ${what} but received ${JSON.stringify(v)}.`);
  return n;
}

/** A positive finite number (`--cfg 7.5`). */
export function parsePositiveNumber(v: string): number {
  return positive(v, "a positive number");
}

/** A positive duration in seconds, fractions allowed (`--stall-timeout 0.5`). */
export function parsePositiveSeconds(v: string): number {
  return positive(v, "a positive number of seconds");
}

/** A non-negative integer flag (`--port 0`, `--max-wait-ms 0`, `--seed 0`): 0 up to 2^53 − 1. */
export function parseNonNegativeInt(v: string): number {
  const n = Number(v);
  if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError(`Expected a non-negative integer but received ${JSON.stringify(v)}.`);
  }
  return n;
}

/**
 * `--max-pixels <n>`: the largest width × height an image may have to be decoded (a positive integer).
 * Passed to `Scorer.create({ maxPixels })` / `preprocessImage(…, { maxPixels })`; the default is core's
 * `DEFAULT_MAX_PIXELS` (178,956,970, where PIL raises DecompressionBombError). Commands that read images
 * register it with `MAX_PIXELS_FLAGS` and `MAX_PIXELS_HELP` so they all say the same.
 */
export function parseMaxPixels(v: string): number {
  const n = Number(v.replaceAll("_", ""));
  if (!/^\s*[\d_]+\s*$/.test(v) || !Number.isSafeInteger(n) || n <= 0) {
    throw new InvalidArgumentError(`Expected a positive integer number of pixels (width × height) but received ${JSON.stringify(v)}.`);
  }
  return n;
}

export const MAX_PIXELS_FLAGS = "--max-pixels <n>";
export const MAX_PIXELS_HELP =
  "largest width×height to decode; larger images are refused from their header (default 178956970: PIL's DecompressionBombError bound)";

/**
 * The one rule for a prompt given on the command line: an empty or blank prompt is BAD_INPUT
 * (exit 2), for `rank` as for `best-of`. Returns the prompt unchanged.
 * @throws BAD_INPUT naming `flag`.
 */
export function requirePrompt(prompt: string | undefined, flag = "--prompt"): string {
  if (typeof prompt !== "string" || prompt.trim() === "") throw invalidParameter(flag, "a non-empty prompt", prompt);
  return prompt;
}
