/**
 * The real Scorer on the tiny CLIP of the shared fixtures (converted once per test process by the
 * shared helper), on the CPU: selector tests check bestOf against what PickScore itself computes.
 */
import { Scorer } from "@pickrank/core";
import { tinyModel } from "../helpers/tiny-model.ts";

export async function testScorer(): Promise<Scorer> {
  return Scorer.create({ model: await tinyModel(), device: "cpu" });
}
