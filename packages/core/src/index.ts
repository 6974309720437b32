export * from "./errors.ts";
export * from "./util/fs.ts";
export * from "./runtime/ort.ts";
export * from "./runtime/device.ts";
