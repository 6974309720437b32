/**
 * Graphs of the shapes users' real workflows have (written for these tests, after the kinds seen in
 * published API workflows): a second pass with its own prompt, regional prompts, prompts behind string
 * nodes and loaders, custom savers, custom and pipe samplers. API format, as "Export (API)" writes it.
 */
import type { ComfyWorkflow } from "@pickrank/adapters";

const ckpt = { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: "sd15.safetensors" } };
const latent = { class_type: "EmptyLatentImage", inputs: { width: 64, height: 64, batch_size: 1 } };
const ks = (seed: number, positive: string, negative: string, latentFrom: string, denoise = 1) => ({
  class_type: "KSampler",
  inputs: {
    seed,
    steps: 2,
    cfg: 7,
    sampler_name: "euler",
    scheduler: "normal",
    denoise,
    model: ["4", 0],
    positive: [positive, 0],
    negative: [negative, 0],
    latent_image: [latentFrom, 0],
  },
});
const encode = (text: unknown, title?: string) => ({
  class_type: "CLIPTextEncode",
  inputs: { text, clip: ["4", 1] },
  ...(title ? { _meta: { title } } : {}),
});

/** Kind 1: generate, then inpaint a region with the region's own prompt (a chain whose passes differ in text). */
export const INPAINT_SECOND_PROMPT: ComfyWorkflow = {
  "4": ckpt,
  "5": latent,
  "6": encode("a harbour at dawn, oil painting", "Positive"),
  "7": encode("blurry", "Negative"),
  "3": ks(11, "6", "7", "5"),
  "8": { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["4", 2] } },
  "30": { class_type: "LoadImageMask", inputs: { image: "mask.png", channel: "alpha" } },
  "14": { class_type: "VAEEncodeForInpaint", inputs: { grow_mask_by: 6, pixels: ["8", 0], vae: ["4", 2], mask: ["30", 0] } },
  "15": encode("a red sailing boat", "Region prompt"),
  "10": ks(12, "15", "7", "14"),
  "16": { class_type: "VAEDecode", inputs: { samples: ["10", 0], vae: ["4", 2] } },
  "17": { class_type: "SaveImage", inputs: { filename_prefix: "inpaint", images: ["16", 0] } },
};

/** Kind 1: two regional prompts set on areas and combined into one positive conditioning. */
export const REGIONAL: ComfyWorkflow = {
  "4": ckpt,
  "5": latent,
  "6": encode("a forest in winter", "Left"),
  "10": encode("a forest in summer", "Right"),
  "7": encode("lowres", "Negative"),
  "11": { class_type: "ConditioningSetArea", inputs: { width: 32, height: 64, x: 0, y: 0, strength: 1, conditioning: ["6", 0] } },
  "12": { class_type: "ConditioningSetArea", inputs: { width: 32, height: 64, x: 32, y: 0, strength: 1, conditioning: ["10", 0] } },
  "13": { class_type: "ConditioningCombine", inputs: { conditioning_1: ["11", 0], conditioning_2: ["12", 0] } },
  "3": ks(5, "13", "7", "5"),
  "8": { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["4", 2] } },
  "9": { class_type: "SaveImage", inputs: { filename_prefix: "regional", images: ["8", 0] } },
};

/** Kind 2: the prompt typed into a string node whose text input is not called text, joined to a fixed suffix. */
export const STRING_NODE_PROMPT: ComfyWorkflow = {
  "4": ckpt,
  "5": latent,
  "20": {
    class_type: "JoinStrings",
    inputs: { separator: ", ", string_a: "a lighthouse", string_b: "", mode: "join" },
    _meta: { title: "Prompt" },
  },
  "6": { class_type: "CLIPTextEncode", inputs: { text: ["20", 0], clip: ["4", 1] } },
  "7": encode("blurry"),
  "3": ks(5, "6", "7", "5"),
  "8": { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["4", 2] } },
  "9": { class_type: "SaveImage", inputs: { filename_prefix: "x", images: ["8", 0] } },
};

/** Kind 2: a prompt styler with a positive and a negative text in and out (outputs 0 and 1). */
export const STYLER: ComfyWorkflow = {
  "4": ckpt,
  "5": latent,
  "21": { class_type: "SDXLPromptStyler", inputs: { text_positive: "a castle", text_negative: "ugly", style: "base", log_prompt: false } },
  "6": { class_type: "CLIPTextEncode", inputs: { text: ["21", 0], clip: ["4", 1] } },
  "7": { class_type: "CLIPTextEncode", inputs: { text: ["21", 1], clip: ["4", 1] } },
  "3": ks(5, "6", "7", "5"),
  "8": { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["4", 2] } },
  "9": { class_type: "SaveImage", inputs: { filename_prefix: "x", images: ["8", 0] } },
};

/** Kind 2: ComfyUI's Qwen-Image-Edit encoder, whose text input is called prompt; a custom saver. */
export const QWEN_EDIT: ComfyWorkflow = {
  "37": { class_type: "UNETLoader", inputs: { unet_name: "qwen_image_edit.safetensors", weight_dtype: "default" } },
  "38": { class_type: "CLIPLoader", inputs: { clip_name: "qwen_2.5_vl_7b.safetensors", type: "qwen_image" } },
  "39": { class_type: "VAELoader", inputs: { vae_name: "qwen_image_vae.safetensors" } },
  "78": { class_type: "LoadImage", inputs: { image: "in.png" } },
  "111": {
    class_type: "TextEncodeQwenImageEditPlus",
    inputs: { prompt: "make the sky purple", clip: ["38", 0], vae: ["39", 0], image1: ["78", 0] },
  },
  "110": { class_type: "TextEncodeQwenImageEditPlus", inputs: { prompt: "", clip: ["38", 0], vae: ["39", 0], image1: ["78", 0] } },
  "88": { class_type: "VAEEncode", inputs: { pixels: ["78", 0], vae: ["39", 0] } },
  "3": {
    class_type: "KSampler",
    inputs: {
      seed: 9,
      steps: 4,
      cfg: 1,
      sampler_name: "euler",
      scheduler: "simple",
      denoise: 1,
      model: ["37", 0],
      positive: ["111", 0],
      negative: ["110", 0],
      latent_image: ["88", 0],
    },
  },
  "8": { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["39", 0] } },
  "60": { class_type: "Image Save", inputs: { images: ["8", 0], output_path: "out", filename_prefix: "edit", extension: "png" } },
};

/** Kind 2: a custom encoder neither named like one nor with a text input named like one (only /object_info tells). */
export const CUSTOM_ENCODER: ComfyWorkflow = {
  "4": ckpt,
  "5": latent,
  "6": { class_type: "T5Conditioner", inputs: { description: "a glass bottle", clip: ["4", 1] } },
  "7": { class_type: "T5Conditioner", inputs: { description: "", clip: ["4", 1] } },
  "3": ks(5, "6", "7", "5"),
  "8": { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["4", 2] } },
  "9": { class_type: "SaveImage", inputs: { filename_prefix: "x", images: ["8", 0] } },
};

/** Kind 2 + 4: a loader holding the prompt as literal inputs, and a sampler that is not a KSampler by class. */
export const EFFICIENT: ComfyWorkflow = {
  "2": {
    class_type: "Efficient Loader",
    inputs: {
      ckpt_name: "xl.safetensors",
      vae_name: "Baked VAE",
      clip_skip: -1,
      positive: "a sticker of a cat",
      negative: "photo",
      empty_latent_width: 1024,
      empty_latent_height: 1024,
      batch_size: 1,
    },
  },
  "4": {
    class_type: "KSampler (Efficient)",
    inputs: {
      seed: 42,
      steps: 20,
      cfg: 7,
      sampler_name: "euler",
      scheduler: "karras",
      denoise: 1,
      preview_method: "auto",
      vae_decode: "true",
      model: ["2", 0],
      positive: ["2", 1],
      negative: ["2", 2],
      latent_image: ["2", 3],
      optional_vae: ["2", 4],
    },
  },
  "5": { class_type: "SaveImage", inputs: { filename_prefix: "sticker", images: ["4", 5] } },
};

/** Kind 3: a custom saver is the real output; previews of the same image and of a composite exist too. */
export const CUSTOM_SAVER_WITH_PREVIEWS: ComfyWorkflow = {
  "4": ckpt,
  "5": latent,
  "6": encode("a fox"),
  "7": encode("blurry"),
  "3": ks(5, "6", "7", "5"),
  "8": { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["4", 2] } },
  "12": { class_type: "PreviewImage", inputs: { images: ["8", 0] }, _meta: { title: "Quick look" } },
  "13": { class_type: "ImageBlend", inputs: { blend_factor: 0.5, blend_mode: "normal", image1: ["8", 0], image2: ["8", 0] } },
  "14": { class_type: "PreviewImage", inputs: { images: ["13", 0] } },
  "15": { class_type: "SaveImageWithMetaData", inputs: { filename_prefix: "final", images: ["8", 0] }, _meta: { title: "Final save" } },
};

/** Kind 3: two savers (raw and upscaled) and a preview: a real choice. */
export const TWO_SAVERS: ComfyWorkflow = {
  ...structuredClone(CUSTOM_SAVER_WITH_PREVIEWS),
  "16": { class_type: "ImageScaleBy", inputs: { upscale_method: "lanczos", scale_by: 2, image: ["8", 0] } },
  "17": {
    class_type: "WAS Image Save",
    inputs: { images: ["16", 0], output_path: "out", filename_prefix: "big" },
    _meta: { title: "Upscaled save" },
  },
};

/** Kind 3: an output only /object_info can reveal (no prefix input, no image-named input), plus a dangling image node. */
export const OUTPUT_BY_FLAG: ComfyWorkflow = {
  "4": ckpt,
  "5": latent,
  "6": encode("a fox"),
  "7": encode("blurry"),
  "3": ks(5, "6", "7", "5"),
  "8": { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["4", 2] } },
  "20": { class_type: "HttpPublisher", inputs: { pixels: ["8", 0], endpoint: "https://example.invalid" } },
  "21": { class_type: "ImageInvert", inputs: { image: ["8", 0] } },
};

/** Kind 4: a Flux sampler from a custom pack with conditioning / neg_conditioning inputs and no add_noise. */
export const XLABS: ComfyWorkflow = {
  "32": { class_type: "UNETLoader", inputs: { unet_name: "flux1-dev.safetensors", weight_dtype: "default" } },
  "4": { class_type: "DualCLIPLoader", inputs: { clip_name1: "clip_l.safetensors", clip_name2: "t5xxl_fp16.safetensors", type: "flux" } },
  "5": { class_type: "CLIPTextEncodeFlux", inputs: { clip_l: "a photo", t5xxl: "a photo", guidance: 4, clip: ["4", 0] } },
  "19": { class_type: "CLIPTextEncodeFlux", inputs: { clip_l: "bad photo", t5xxl: "bad photo", guidance: 4, clip: ["4", 0] } },
  "6": { class_type: "EmptyLatentImage", inputs: { width: 64, height: 64, batch_size: 1 } },
  "3": {
    class_type: "XlabsSampler",
    inputs: {
      noise_seed: 7,
      steps: 4,
      timestep_to_start_cfg: 1,
      true_gs: 2,
      model: ["32", 0],
      conditioning: ["5", 0],
      neg_conditioning: ["19", 0],
      latent_image: ["6", 0],
    },
  },
  "8": { class_type: "VAELoader", inputs: { vae_name: "ae.safetensors" } },
  "7": { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["8", 0] } },
  "23": { class_type: "SaveImage", inputs: { filename_prefix: "x", images: ["7", 0] } },
};

/** Kind 4: pipe samplers base → refiner; the refiner adds no noise and saves its image itself. */
export const PIPE_REFINER: ComfyWorkflow = {
  "187": { class_type: "ttN text", inputs: { text: "a glass bottle on a beach" } },
  "188": { class_type: "ttN text", inputs: { text: "text, watermark" } },
  "197": {
    class_type: "ttN pipeLoader",
    inputs: {
      ckpt_name: "xl.safetensors",
      positive: ["187", 0],
      negative: ["188", 0],
      empty_latent_width: 768,
      empty_latent_height: 768,
      batch_size: 1,
      seed: 0,
    },
    _meta: { title: "Base loader" },
  },
  "196": {
    class_type: "ttN pipeLoader",
    inputs: {
      ckpt_name: "refiner.safetensors",
      positive: ["187", 0],
      negative: ["188", 0],
      empty_latent_width: 768,
      empty_latent_height: 768,
      batch_size: 1,
      seed: 0,
    },
  },
  "194": {
    class_type: "ttN pipeKSamplerAdvanced",
    inputs: {
      add_noise: "enable",
      steps: 20,
      cfg: 7,
      sampler_name: "euler",
      scheduler: "normal",
      image_output: "Hide",
      save_prefix: "a",
      noise_seed: 31,
      pipe: ["197", 0],
    },
    _meta: { title: "Base" },
  },
  "195": {
    class_type: "ttN pipeKSamplerAdvanced",
    inputs: {
      add_noise: "disable",
      steps: 20,
      cfg: 7,
      sampler_name: "euler",
      scheduler: "normal",
      image_output: "Save",
      save_prefix: "b",
      noise_seed: 32,
      pipe: ["196", 0],
      optional_latent: ["194", 4],
    },
    _meta: { title: "Refiner" },
  },
};

/** Kind 4: a base pass by a node pickrank cannot recognise as a sampler (no steps), then a refiner that adds no noise. */
export const UNRECOGNISED_BASE: ComfyWorkflow = {
  "4": ckpt,
  "5": latent,
  "6": encode("a teapot"),
  "7": encode("blurry"),
  "3": {
    class_type: "TurboBase",
    inputs: { noise_seed: 5, strength: 1, model: ["4", 0], positive: ["6", 0], negative: ["7", 0], latent_image: ["5", 0] },
  },
  "11": {
    class_type: "KSamplerAdvanced",
    inputs: {
      add_noise: "disable",
      noise_seed: 0,
      steps: 4,
      cfg: 7,
      sampler_name: "euler",
      scheduler: "normal",
      start_at_step: 2,
      end_at_step: 10000,
      return_with_leftover_noise: "disable",
      model: ["4", 0],
      positive: ["6", 0],
      negative: ["7", 0],
      latent_image: ["3", 0],
    },
  },
  "8": { class_type: "VAEDecode", inputs: { samples: ["11", 0], vae: ["4", 2] } },
  "9": { class_type: "SaveImage", inputs: { filename_prefix: "x", images: ["8", 0] } },
};

/** A ControlNet on the conditioning, then a face detailer pass (a sampler over an image) before the saver. */
export const CONTROLNET_FACE_DETAILER: ComfyWorkflow = {
  "4": ckpt,
  "5": latent,
  "6": encode("portrait of an astronaut"),
  "7": encode("lowres"),
  "11": { class_type: "ControlNetLoader", inputs: { control_net_name: "openpose.safetensors" } },
  "12": { class_type: "LoadImage", inputs: { image: "pose.png" } },
  "13": {
    class_type: "ControlNetApplyAdvanced",
    inputs: {
      strength: 1,
      start_percent: 0,
      end_percent: 1,
      positive: ["6", 0],
      negative: ["7", 0],
      control_net: ["11", 0],
      image: ["12", 0],
    },
  },
  "3": ks(5, "13", "7", "5"),
  "8": { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["4", 2] } },
  "9": { class_type: "SaveImage", inputs: { filename_prefix: "before-detail", images: ["8", 0] } },
  "14": { class_type: "UltralyticsDetectorProvider", inputs: { model_name: "bbox/face_yolov8m.pt" } },
  "20": {
    class_type: "FaceDetailer",
    inputs: {
      guide_size: 512,
      seed: 77,
      steps: 20,
      cfg: 8,
      sampler_name: "euler",
      scheduler: "normal",
      denoise: 0.5,
      feather: 5,
      image: ["8", 0],
      model: ["4", 0],
      clip: ["4", 1],
      vae: ["4", 2],
      positive: ["13", 0],
      negative: ["13", 1],
      bbox_detector: ["14", 0],
    },
  },
  "21": { class_type: "SaveImage", inputs: { filename_prefix: "detailed", images: ["20", 0] } },
  "22": { class_type: "PreviewImage", inputs: { images: ["20", 1] } },
};
