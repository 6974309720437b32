export * from "./runtime/ort.ts";
export * from "./runtime/device.ts";
export * from "./model/manifest.ts";
export * from "./convert/convert.ts";
export * from "./tokenizer/clip-tokenizer.ts";
export * from "./preprocess/image.ts";
export * from "./hub/index.ts";
export * from "./scorer.ts";
