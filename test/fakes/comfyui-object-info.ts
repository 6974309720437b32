/**
 * GET /object_info for the fake ComfyUI: the node classes it runs, described as ComfyUI's server.py
 * `node_info` does (input.required / optional as [type, options] tuples, input_order, output, output_name,
 * output_is_list, output_node, name, display_name, category), with the input types of ComfyUI's nodes.py
 * and comfy_extras. Combos are [[choices], {}] on older servers and ["COMBO", { options }] on newer ones.
 */

type Spec = [string, string | string[], Record<string, unknown>?];

const PROMPT = { multiline: true, dynamicPrompts: true };
const SEED = {
  default: 0,
  min: 0, // ComfyUI serves 0xffffffffffffffff; as a JSON number it reads back as 2^64 either way.
  max: 2 ** 64,
  control_after_generate: true,
};
const SAMPLERS = ["euler", "euler_ancestral", "heun", "dpmpp_2m", "dpmpp_2m_sde", "ddim", "uni_pc"];
const SCHEDULERS = ["normal", "karras", "exponential", "simple", "sgm_uniform", "beta"];

function def(
  name: string,
  category: string,
  required: Spec[],
  output: string[],
  opts: { optional?: Spec[]; outputNode?: boolean; outputName?: string[]; combo2?: boolean } = {},
): Record<string, unknown> {
  const tuple = ([, type, o]: Spec): unknown[] => {
    if (Array.isArray(type)) return opts.combo2 ? ["COMBO", { ...o, options: type }] : [type, { ...o }];
    return o === undefined ? [type] : [type, o];
  };
  const group = (specs: Spec[]): Record<string, unknown> => Object.fromEntries(specs.map((s) => [s[0], tuple(s)]));
  const optional = opts.optional ?? [];
  return {
    input: { required: group(required), ...(optional.length > 0 ? { optional: group(optional) } : {}) },
    input_order: { required: required.map((s) => s[0]), ...(optional.length > 0 ? { optional: optional.map((s) => s[0]) } : {}) },
    output,
    output_is_list: output.map(() => false),
    output_name: opts.outputName ?? output,
    name,
    display_name: name,
    description: "",
    python_module: "nodes",
    category,
    output_node: opts.outputNode === true,
  };
}

/** The object_info of the classes the fake runs; `checkpoints` fills CheckpointLoaderSimple's combo. */
export function coreObjectInfo(checkpoints: string[], combo2 = false): Record<string, Record<string, unknown>> {
  const c = { combo2 };
  const sampling: Spec[] = [
    ["sampler_name", SAMPLERS],
    ["scheduler", SCHEDULERS],
  ];
  const list: Record<string, unknown>[] = [
    def(
      "CheckpointLoaderSimple",
      "loaders",
      [["ckpt_name", checkpoints, { tooltip: "The name of the checkpoint (model) to load." }]],
      ["MODEL", "CLIP", "VAE"],
      c,
    ),
    def(
      "UNETLoader",
      "advanced/loaders",
      [
        ["unet_name", ["flux1-dev.safetensors"]],
        ["weight_dtype", ["default", "fp8_e4m3fn"]],
      ],
      ["MODEL"],
      c,
    ),
    def(
      "DualCLIPLoader",
      "advanced/loaders",
      [
        ["clip_name1", ["t5xxl_fp16.safetensors"]],
        ["clip_name2", ["clip_l.safetensors"]],
        ["type", ["sdxl", "sd3", "flux"]],
      ],
      ["CLIP"],
      c,
    ),
    def(
      "CLIPLoader",
      "advanced/loaders",
      [
        ["clip_name", ["clip_l.safetensors"]],
        ["type", ["stable_diffusion", "sd3"]],
      ],
      ["CLIP"],
      c,
    ),
    def("VAELoader", "loaders", [["vae_name", ["ae.safetensors"]]], ["VAE"], c),
    def(
      "LoraLoader",
      "loaders",
      [
        ["model", "MODEL"],
        ["clip", "CLIP"],
        ["lora_name", ["a.safetensors"]],
        ["strength_model", "FLOAT"],
        ["strength_clip", "FLOAT"],
      ],
      ["MODEL", "CLIP"],
      c,
    ),
    def(
      "CLIPSetLastLayer",
      "conditioning",
      [
        ["clip", "CLIP"],
        ["stop_at_clip_layer", "INT"],
      ],
      ["CLIP"],
    ),
    def(
      "CLIPTextEncode",
      "conditioning",
      [
        ["text", "STRING", PROMPT],
        ["clip", "CLIP"],
      ],
      ["CONDITIONING"],
    ),
    def(
      "CLIPTextEncodeSDXL",
      "advanced/conditioning",
      [
        ["clip", "CLIP"],
        ["width", "INT"],
        ["height", "INT"],
        ["crop_w", "INT"],
        ["crop_h", "INT"],
        ["target_width", "INT"],
        ["target_height", "INT"],
        ["text_g", "STRING", PROMPT],
        ["text_l", "STRING", PROMPT],
      ],
      ["CONDITIONING"],
    ),
    def(
      "CLIPTextEncodeSDXLRefiner",
      "advanced/conditioning",
      [
        ["ascore", "FLOAT"],
        ["width", "INT"],
        ["height", "INT"],
        ["text", "STRING", PROMPT],
        ["clip", "CLIP"],
      ],
      ["CONDITIONING"],
    ),
    def(
      "CLIPTextEncodeFlux",
      "advanced/conditioning/flux",
      [
        ["clip", "CLIP"],
        ["clip_l", "STRING", PROMPT],
        ["t5xxl", "STRING", PROMPT],
        ["guidance", "FLOAT"],
      ],
      ["CONDITIONING"],
    ),
    def(
      "CLIPTextEncodeSD3",
      "advanced/conditioning",
      [
        ["clip", "CLIP"],
        ["clip_l", "STRING", PROMPT],
        ["clip_g", "STRING", PROMPT],
        ["t5xxl", "STRING", PROMPT],
        ["empty_padding", ["none", "empty_prompt"]],
      ],
      ["CONDITIONING"],
      c,
    ),
    def("ConditioningZeroOut", "advanced/conditioning", [["conditioning", "CONDITIONING"]], ["CONDITIONING"]),
    def(
      "ConditioningCombine",
      "conditioning",
      [
        ["conditioning_1", "CONDITIONING"],
        ["conditioning_2", "CONDITIONING"],
      ],
      ["CONDITIONING"],
    ),
    def(
      "FluxGuidance",
      "advanced/conditioning/flux",
      [
        ["conditioning", "CONDITIONING"],
        ["guidance", "FLOAT"],
      ],
      ["CONDITIONING"],
    ),
    def(
      "ModelSamplingFlux",
      "advanced/model",
      [
        ["model", "MODEL"],
        ["max_shift", "FLOAT"],
        ["base_shift", "FLOAT"],
        ["width", "INT"],
        ["height", "INT"],
      ],
      ["MODEL"],
    ),
    def(
      "EmptyLatentImage",
      "latent",
      [
        ["width", "INT"],
        ["height", "INT"],
        ["batch_size", "INT"],
      ],
      ["LATENT"],
    ),
    def(
      "EmptySD3LatentImage",
      "latent/sd3",
      [
        ["width", "INT"],
        ["height", "INT"],
        ["batch_size", "INT"],
      ],
      ["LATENT"],
    ),
    def(
      "LatentUpscale",
      "latent",
      [
        ["samples", "LATENT"],
        ["upscale_method", ["nearest-exact", "bilinear"]],
        ["width", "INT"],
        ["height", "INT"],
        ["crop", ["disabled", "center"]],
      ],
      ["LATENT"],
      c,
    ),
    def(
      "LatentUpscaleBy",
      "latent",
      [
        ["samples", "LATENT"],
        ["upscale_method", ["nearest-exact", "bilinear"]],
        ["scale_by", "FLOAT"],
      ],
      ["LATENT"],
      c,
    ),
    def(
      "KSampler",
      "sampling",
      [
        ["model", "MODEL"],
        ["seed", "INT", SEED],
        ["steps", "INT"],
        ["cfg", "FLOAT"],
        ...sampling,
        ["positive", "CONDITIONING"],
        ["negative", "CONDITIONING"],
        ["latent_image", "LATENT"],
        ["denoise", "FLOAT"],
      ],
      ["LATENT"],
      c,
    ),
    def(
      "KSamplerAdvanced",
      "sampling",
      [
        ["model", "MODEL"],
        ["add_noise", ["enable", "disable"]],
        ["noise_seed", "INT", SEED],
        ["steps", "INT"],
        ["cfg", "FLOAT"],
        ...sampling,
        ["positive", "CONDITIONING"],
        ["negative", "CONDITIONING"],
        ["latent_image", "LATENT"],
        ["start_at_step", "INT"],
        ["end_at_step", "INT"],
        ["return_with_leftover_noise", ["disable", "enable"]],
      ],
      ["LATENT"],
      c,
    ),
    def(
      "SamplerCustom",
      "sampling/custom_sampling",
      [
        ["model", "MODEL"],
        ["add_noise", "BOOLEAN"],
        ["noise_seed", "INT", SEED],
        ["cfg", "FLOAT"],
        ["positive", "CONDITIONING"],
        ["negative", "CONDITIONING"],
        ["sampler", "SAMPLER"],
        ["sigmas", "SIGMAS"],
        ["latent_image", "LATENT"],
      ],
      ["LATENT", "LATENT"],
      { outputName: ["output", "denoised_output"] },
    ),
    def(
      "SamplerCustomAdvanced",
      "sampling/custom_sampling",
      [
        ["noise", "NOISE"],
        ["guider", "GUIDER"],
        ["sampler", "SAMPLER"],
        ["sigmas", "SIGMAS"],
        ["latent_image", "LATENT"],
      ],
      ["LATENT", "LATENT"],
      {
        outputName: ["output", "denoised_output"],
      },
    ),
    def("RandomNoise", "sampling/custom_sampling/noise", [["noise_seed", "INT", SEED]], ["NOISE"]),
    def("DisableNoise", "sampling/custom_sampling/noise", [], ["NOISE"]),
    def(
      "BasicGuider",
      "sampling/custom_sampling/guiders",
      [
        ["model", "MODEL"],
        ["conditioning", "CONDITIONING"],
      ],
      ["GUIDER"],
    ),
    def(
      "CFGGuider",
      "sampling/custom_sampling/guiders",
      [
        ["model", "MODEL"],
        ["positive", "CONDITIONING"],
        ["negative", "CONDITIONING"],
        ["cfg", "FLOAT"],
      ],
      ["GUIDER"],
    ),
    def("KSamplerSelect", "sampling/custom_sampling/samplers", [["sampler_name", SAMPLERS]], ["SAMPLER"], c),
    def(
      "BasicScheduler",
      "sampling/custom_sampling/schedulers",
      [
        ["model", "MODEL"],
        ["scheduler", SCHEDULERS],
        ["steps", "INT"],
        ["denoise", "FLOAT"],
      ],
      ["SIGMAS"],
      c,
    ),
    def(
      "VAEDecode",
      "latent",
      [
        ["samples", "LATENT"],
        ["vae", "VAE"],
      ],
      ["IMAGE"],
    ),
    def(
      "SaveImage",
      "image",
      [
        ["images", "IMAGE"],
        ["filename_prefix", "STRING", { default: "ComfyUI" }],
      ],
      [],
      { outputNode: true },
    ),
    def("PreviewImage", "image", [["images", "IMAGE"]], [], { outputNode: true }),
    def("SaveImageWebsocket", "api node/image", [["images", "IMAGE"]], [], { outputNode: true }),
    def("PrimitiveString", "utils/primitive", [["value", "STRING"]], ["STRING"]),
    def("PrimitiveInt", "utils/primitive", [["value", "INT"]], ["INT"]),
  ];
  return Object.fromEntries(list.map((d) => [d.name as string, d as Record<string, unknown>]));
}

/** A class definition for tests of custom nodes, in the same shape (`extra` overrides fields). */
export function customClass(
  name: string,
  required: Spec[],
  output: string[],
  extra: { optional?: Spec[]; outputNode?: boolean; outputName?: string[] } = {},
): Record<string, unknown> {
  return def(name, "custom", required, output, extra);
}
