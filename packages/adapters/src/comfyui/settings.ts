import type { RenderSettings } from "@pickrank/contract";
import type { ComfyWorkflow, InputRef, WorkflowPlan } from "./workflow.ts";

function literal(wf: ComfyWorkflow, ref: InputRef | undefined): unknown {
  return ref === undefined ? undefined : wf[ref.node]?.inputs[ref.input];
}

function str(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}

function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

/**
 * The settings of a ComfyUI prompt as it was queued, read where the workflow plan says they live:
 * checkpoint (loader's ckpt_name / unet_name), steps, CFG, sampler and scheduler (the first sampler
 * of the chain that has each as a literal), size (the empty latent), negative prompt (the first
 * negative text input). A setting the plan has no node for, or that is a link, is left out.
 */
export function settingsFromWorkflow(wf: ComfyWorkflow, plan: WorkflowPlan): RenderSettings {
  const first = <T>(refs: InputRef[], pick: (v: unknown) => T | undefined): T | undefined => {
    for (const r of refs) {
      const v = pick(literal(wf, r));
      if (v !== undefined) return v;
    }
    return undefined;
  };
  const s: RenderSettings = {};
  const checkpoint = str(literal(wf, plan.checkpoint));
  const steps = first(plan.steps, num);
  const cfgScale = first(plan.cfg, num);
  const sampler = first(plan.samplerName, str);
  const scheduler = first(plan.scheduler, str);
  const width = num(literal(wf, plan.width));
  const height = num(literal(wf, plan.height));
  const negativePrompt = first(plan.negative, (v) => (typeof v === "string" ? v : undefined));
  if (checkpoint !== undefined) s.checkpoint = checkpoint;
  if (steps !== undefined) s.steps = steps;
  if (cfgScale !== undefined) s.cfgScale = cfgScale;
  if (sampler !== undefined) s.sampler = sampler;
  if (scheduler !== undefined) s.scheduler = scheduler;
  if (width !== undefined) s.width = width;
  if (height !== undefined) s.height = height;
  if (negativePrompt !== undefined) s.negativePrompt = negativePrompt;
  return s;
}
