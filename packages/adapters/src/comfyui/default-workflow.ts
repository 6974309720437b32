import type { ComfyWorkflow } from "./workflow.ts";

/**
 * The text-to-image graph used when no workflow is given, for SD1.5 and SDXL checkpoints (SDXL: pass
 * params width/height 1024). An empty ckpt_name is filled at run time from params.checkpoint or the
 * server's first CheckpointLoaderSimple entry. Kept identical to examples/workflows/txt2img-sd.json
 * (a test checks it).
 */
export const DEFAULT_TXT2IMG_WORKFLOW: ComfyWorkflow = {
  "3": {
    class_type: "KSampler",
    inputs: {
      seed: 0,
      steps: 20,
      cfg: 7,
      sampler_name: "euler",
      scheduler: "normal",
      denoise: 1,
      model: ["4", 0],
      positive: ["6", 0],
      negative: ["7", 0],
      latent_image: ["5", 0],
    },
    _meta: { title: "KSampler" },
  },
  "4": { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: "" }, _meta: { title: "Load Checkpoint" } },
  "5": { class_type: "EmptyLatentImage", inputs: { width: 512, height: 512, batch_size: 1 }, _meta: { title: "Empty Latent Image" } },
  "6": { class_type: "CLIPTextEncode", inputs: { text: "", clip: ["4", 1] }, _meta: { title: "Positive prompt" } },
  "7": {
    class_type: "CLIPTextEncode",
    inputs: { text: "blurry, low quality, watermark", clip: ["4", 1] },
    _meta: { title: "Negative prompt" },
  },
  "8": { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["4", 2] }, _meta: { title: "VAE Decode" } },
  "9": { class_type: "SaveImage", inputs: { filename_prefix: "pickrank", images: ["8", 0] }, _meta: { title: "Save Image" } },
};
