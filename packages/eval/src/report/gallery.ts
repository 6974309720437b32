/**
 * The report's gallery: per prompt and configuration, the selector's pick (highest score, lowest
 * seedIndex on a tie — PromptSummary.pickSeedIndex) beside the other candidates in seed order.
 */
import { invalidParameter } from "@pickrank/contract";
import type { CandidateRow } from "../records.ts";
import { esc, formatValue } from "./html.ts";
import type { ReportInput } from "./types.ts";

const DATA_IMAGE = /^data:image\/(png|jpeg|webp|gif|avif|bmp);base64,[A-Za-z0-9+/=\s]*$/;

/**
 * The `src` of an image: a data:image URI as it is; a path (relative or absolute) percent-encoded per
 * segment. @throws BAD_INPUT for a URL with a scheme other than data:image or file:, or a //host URL.
 */
export function imageSrc(src: string): string {
  if (src.startsWith("data:")) {
    if (!DATA_IMAGE.test(src)) throw invalidParameter("images", "a data:image/<png|jpeg|webp|gif|avif|bmp>;base64 URI", src);
    return src;
  }
  if (src.startsWith("//") || (/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(src) && !src.startsWith("file:"))) {
    throw invalidParameter("images", "a relative path, an absolute file path or a data:image URI (the report works offline)", src);
  }
  if (src.startsWith("file:")) return src;
  return src
    .split("/")
    .map((seg) => encodeURIComponent(seg))
    .join("/");
}

/** One figure of the gallery. */
function tile(r: CandidateRow, src: string, pick: boolean): string {
  const judge = r.judgeScore === null ? "" : ` · judge ${formatValue(r.judgeScore)}`;
  const label = `${pick ? "pick · " : ""}seed #${r.seedIndex} · ${formatValue(r.score)}${judge}`;
  const cls = pick ? "tile pick" : "tile";
  return (
    `<figure class="${cls}" data-seed-index="${r.seedIndex}"><img loading="lazy" src="${esc(src)}" ` +
    `alt="${esc(`${r.config}, ${r.promptId}, seed #${r.seedIndex}`)}"><figcaption>${esc(label)}</figcaption></figure>`
  );
}

/** The gallery section, or "" without rows or a run summary. */
export function gallery(input: ReportInput): string {
  const run = input.run;
  if (!run || !input.rows || input.rows.length === 0) return "";
  const text = new Map((input.prompts ?? []).map((p) => [p.id, p.text]));
  const byKey = new Map<string, CandidateRow[]>();
  for (const r of input.rows) {
    const key = `${r.config}\u0000${r.promptId}`;
    const list = byKey.get(key) ?? [];
    list.push(r);
    byKey.set(key, list);
  }
  const order = run.configs[0]?.perPrompt.map((p) => p.promptId) ?? [];
  const seen = new Set(order);
  for (const c of run.configs) {
    for (const p of c.perPrompt) {
      if (!seen.has(p.promptId)) order.push(p.promptId);
      seen.add(p.promptId);
    }
  }
  const limit = input.galleryPrompts ?? order.length;
  const sections = order.slice(0, limit).map((promptId) => {
    const blocks = run.configs.flatMap((c) => {
      const ps = c.perPrompt.find((p) => p.promptId === promptId);
      const list = byKey.get(`${c.config}\u0000${promptId}`);
      if (!ps || !list) return [];
      const sorted = [...list].sort((a, b) => a.seedIndex - b.seedIndex);
      const pick = sorted.find((r) => r.seedIndex === ps.pickSeedIndex) ?? sorted[0]!;
      const tiles = [pick, ...sorted.filter((r) => r !== pick)].map((r) =>
        tile(r, imageSrc(input.images?.[r.image] ?? r.image), r === pick),
      );
      return [`<div class="config-row"><h4>${esc(c.config)}</h4><div class="tiles">${tiles.join("")}</div></div>`];
    });
    const heading = `<h3>${esc(promptId)}</h3><p class="prompt">${esc(text.get(promptId) ?? "")}</p>`;
    return `<section class="gallery-prompt" data-prompt-id="${esc(promptId)}">${heading}${blocks.join("")}</section>`;
  });
  const more = order.length > limit ? `<p>${order.length - limit} more prompt(s) not shown.</p>` : "";
  return `<h2 id="gallery">Gallery: the pick beside the rest</h2>\n${sections.join("\n")}${more}`;
}
