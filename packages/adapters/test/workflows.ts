/** Real-looking API-format workflows (shapes as ComfyUI's "Export (API)" writes them) for detection tests. */
import { DEFAULT_TXT2IMG_WORKFLOW, type ComfyWorkflow } from "@pickrank/adapters";

export const SD15: ComfyWorkflow = structuredClone(DEFAULT_TXT2IMG_WORKFLOW);
SD15["4"]!.inputs.ckpt_name = "sd15.safetensors";
SD15["6"]!.inputs.text = "beautiful scenery nature glass bottle landscape, purple galaxy bottle";
SD15["7"]!.inputs.text = "text, watermark";
SD15["5"]!.inputs.width = 64;
SD15["5"]!.inputs.height = 64;
SD15["3"]!.inputs.steps = 3;

export const SDXL_REFINER: ComfyWorkflow = {
  "4": { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: "sd_xl_base_1.0.safetensors" } },
  "12": { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: "sd_xl_refiner_1.0.safetensors" } },
  "5": { class_type: "EmptyLatentImage", inputs: { width: 1024, height: 1024, batch_size: 1 } },
  "6": {
    class_type: "CLIPTextEncodeSDXL",
    inputs: {
      width: 4096,
      height: 4096,
      crop_w: 0,
      crop_h: 0,
      target_width: 4096,
      target_height: 4096,
      text_g: "evening sunset scenery blue sky",
      text_l: "evening sunset scenery blue sky",
      clip: ["4", 1],
    },
  },
  "7": {
    class_type: "CLIPTextEncodeSDXL",
    inputs: {
      width: 4096,
      height: 4096,
      crop_w: 0,
      crop_h: 0,
      target_width: 4096,
      target_height: 4096,
      text_g: "text, watermark",
      text_l: "text, watermark",
      clip: ["4", 1],
    },
  },
  "15": {
    class_type: "CLIPTextEncodeSDXLRefiner",
    inputs: { ascore: 6, width: 1024, height: 1024, text: "evening sunset scenery blue sky", clip: ["12", 1] },
  },
  "16": {
    class_type: "CLIPTextEncodeSDXLRefiner",
    inputs: { ascore: 2.5, width: 1024, height: 1024, text: "text, watermark", clip: ["12", 1] },
  },
  "10": {
    class_type: "KSamplerAdvanced",
    inputs: {
      add_noise: "enable",
      noise_seed: 721897303308196,
      steps: 4,
      cfg: 8,
      sampler_name: "euler",
      scheduler: "normal",
      start_at_step: 0,
      end_at_step: 3,
      return_with_leftover_noise: "enable",
      model: ["4", 0],
      positive: ["6", 0],
      negative: ["7", 0],
      latent_image: ["5", 0],
    },
  },
  "11": {
    class_type: "KSamplerAdvanced",
    inputs: {
      add_noise: "disable",
      noise_seed: 0,
      steps: 4,
      cfg: 8,
      sampler_name: "euler",
      scheduler: "normal",
      start_at_step: 3,
      end_at_step: 10000,
      return_with_leftover_noise: "disable",
      model: ["12", 0],
      positive: ["15", 0],
      negative: ["16", 0],
      latent_image: ["10", 0],
    },
  },
  "17": { class_type: "VAEDecode", inputs: { samples: ["11", 0], vae: ["12", 2] } },
  "19": { class_type: "SaveImage", inputs: { filename_prefix: "ComfyUI", images: ["17", 0] } },
};

export const FLUX: ComfyWorkflow = {
  "6": {
    class_type: "CLIPTextEncode",
    inputs: { text: "cute anime girl with massive fluffy fennec ears", clip: ["11", 0] },
    _meta: { title: "CLIP Text Encode (Positive Prompt)" },
  },
  "8": { class_type: "VAEDecode", inputs: { samples: ["13", 0], vae: ["10", 0] } },
  "9": { class_type: "SaveImage", inputs: { filename_prefix: "ComfyUI", images: ["8", 0] } },
  "10": { class_type: "VAELoader", inputs: { vae_name: "ae.safetensors" } },
  "11": { class_type: "DualCLIPLoader", inputs: { clip_name1: "t5xxl_fp16.safetensors", clip_name2: "clip_l.safetensors", type: "flux" } },
  "12": { class_type: "UNETLoader", inputs: { unet_name: "flux1-dev.safetensors", weight_dtype: "default" } },
  "13": {
    class_type: "SamplerCustomAdvanced",
    inputs: { noise: ["25", 0], guider: ["22", 0], sampler: ["16", 0], sigmas: ["17", 0], latent_image: ["27", 0] },
  },
  "16": { class_type: "KSamplerSelect", inputs: { sampler_name: "euler" } },
  "17": { class_type: "BasicScheduler", inputs: { scheduler: "simple", steps: 3, denoise: 1, model: ["30", 0] } },
  "22": { class_type: "BasicGuider", inputs: { model: ["30", 0], conditioning: ["26", 0] } },
  "25": { class_type: "RandomNoise", inputs: { noise_seed: 219670278747233 } },
  "26": { class_type: "FluxGuidance", inputs: { guidance: 3.5, conditioning: ["6", 0] } },
  "27": { class_type: "EmptySD3LatentImage", inputs: { width: 1024, height: 1024, batch_size: 1 } },
  "30": { class_type: "ModelSamplingFlux", inputs: { max_shift: 1.15, base_shift: 0.5, width: 1024, height: 1024, model: ["12", 0] } },
};

/** Two independent generations in one graph, each with its own prompt. */
export const TWO_SAMPLERS: ComfyWorkflow = {
  "4": { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: "sd15.safetensors" } },
  "5": { class_type: "EmptyLatentImage", inputs: { width: 64, height: 64, batch_size: 1 } },
  "6": { class_type: "CLIPTextEncode", inputs: { text: "a cat", clip: ["4", 1] } },
  "16": { class_type: "CLIPTextEncode", inputs: { text: "a dog", clip: ["4", 1] } },
  "7": { class_type: "CLIPTextEncode", inputs: { text: "blurry", clip: ["4", 1] } },
  "3": {
    class_type: "KSampler",
    inputs: {
      seed: 1,
      steps: 2,
      cfg: 7,
      sampler_name: "euler",
      scheduler: "normal",
      denoise: 1,
      model: ["4", 0],
      positive: ["6", 0],
      negative: ["7", 0],
      latent_image: ["5", 0],
    },
  },
  "13": {
    class_type: "KSampler",
    inputs: {
      seed: 2,
      steps: 2,
      cfg: 7,
      sampler_name: "euler",
      scheduler: "normal",
      denoise: 1,
      model: ["4", 0],
      positive: ["16", 0],
      negative: ["7", 0],
      latent_image: ["5", 0],
    },
  },
  "8": { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["4", 2] } },
  "18": { class_type: "VAEDecode", inputs: { samples: ["13", 0], vae: ["4", 2] } },
  "9": { class_type: "SaveImage", inputs: { filename_prefix: "cat", images: ["8", 0] } },
  "19": { class_type: "SaveImage", inputs: { filename_prefix: "dog", images: ["18", 0] } },
};

/** Hires fix: a second KSampler refines the upscaled latent of the first; previews of the first pass. */
export const HIRES_FIX: ComfyWorkflow = {
  "4": { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: "sd15.safetensors" } },
  "5": { class_type: "EmptyLatentImage", inputs: { width: 64, height: 64, batch_size: 1 } },
  "6": { class_type: "CLIPTextEncode", inputs: { text: ["20", 0], clip: ["4", 1] } },
  "20": { class_type: "PrimitiveString", inputs: { value: "a lighthouse at dusk" } },
  "7": { class_type: "CLIPTextEncode", inputs: { text: "blurry", clip: ["4", 1] } },
  "3": {
    class_type: "KSampler",
    inputs: {
      seed: 5,
      steps: 2,
      cfg: 7,
      sampler_name: "euler",
      scheduler: "normal",
      denoise: 1,
      model: ["4", 0],
      positive: ["6", 0],
      negative: ["7", 0],
      latent_image: ["5", 0],
    },
  },
  "10": { class_type: "LatentUpscaleBy", inputs: { upscale_method: "nearest-exact", scale_by: 1.5, samples: ["3", 0] } },
  "11": {
    class_type: "KSampler",
    inputs: {
      seed: 5,
      steps: 2,
      cfg: 7,
      sampler_name: "euler",
      scheduler: "normal",
      denoise: 0.5,
      model: ["4", 0],
      positive: ["6", 0],
      negative: ["7", 0],
      latent_image: ["10", 0],
    },
  },
  "8": { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["4", 2] } },
  "12": { class_type: "PreviewImage", inputs: { images: ["8", 0] } },
  "13": { class_type: "VAEDecode", inputs: { samples: ["11", 0], vae: ["4", 2] } },
  "14": { class_type: "SaveImage", inputs: { filename_prefix: "hires", images: ["13", 0] } },
};

/** The default graph with SaveImageWebsocket as its output: images come as binary frames. */
export const SD15_WEBSOCKET: ComfyWorkflow = structuredClone(SD15);
SD15_WEBSOCKET["9"] = { class_type: "SaveImageWebsocket", inputs: { images: ["8", 0] } };
