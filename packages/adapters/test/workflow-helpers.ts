/** Helpers for the workflow-detection tests: catching a refusal and checking what it names. */
import { expect } from "vitest";
import type { ComfyWorkflow, InputRef, WorkflowPlan } from "@pickrank/adapters";
import { PickrankError } from "@pickrank/contract";

/** Runs fn, which must throw a PickrankError; returns it. */
export function refusal(fn: () => unknown): PickrankError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(PickrankError);
    return e as PickrankError;
  }
  throw new Error("expected a refusal but detection succeeded");
}

/**
 * The node ids a message suggests through flags ("--prompt-node 6", "--output-node 10") or labels
 * ("KSampler #3"); every one must exist in the workflow, and no message may send a CLI user to options.nodes.
 */
export function expectActionable(message: string, wf: ComfyWorkflow): string[] {
  const suggested = [...message.matchAll(/--(?:prompt|negative|seed|batch|output|sampler)-node ([0-9][\w.-]*|"[^"]+")/g)].map((m) => m[1]!);
  const labelled = [...message.matchAll(/#([\w-]+)/g)].map((m) => m[1]!);
  expect(suggested.length, `no flag suggested in: ${message}`).toBeGreaterThan(0);
  for (const s of suggested) {
    const id = s.replace(/^"|"$/g, "").split(".")[0]!;
    expect(Object.keys(wf), `message suggests absent node ${s}: ${message}`).toContain(id);
  }
  for (const id of labelled) expect(Object.keys(wf), `message labels absent node #${id}`).toContain(id);
  expect(message).not.toMatch(/options\.nodes/);
  return suggested;
}

/** "6.text" strings for refs, for compact comparisons. */
export function refs(list: InputRef[] | undefined): string[] {
  return (list ?? []).map((r) => `${r.node}.${r.input}`);
}

/** The reading of a plan as the shared workflows' README states it. */
export function reading(plan: WorkflowPlan): {
  positive: string[];
  negative: string[];
  seed: string[];
  batch: string | undefined;
  outputs: string[];
} {
  return {
    positive: refs(plan.positive),
    negative: refs(plan.negative),
    seed: refs(plan.seed),
    batch: plan.batch?.node,
    outputs: plan.outputs.map((o) => o.node),
  };
}
