import { InvalidArgumentError } from "commander";

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
