/**
 * Small HTML helpers of the report: escaping, the one number format of its tables, and table cells
 * that carry the exact JSON value and where it sits in the summary (a JSON pointer), so a reader or a
 * test can check that what is shown is what the JSON says.
 */

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Text or attribute value with &, <, >, " and ' escaped. */
export function esc(s: string | number): string {
  return String(s).replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/**
 * The report's number format: integers as they are, any other number with three decimals
 * (`toFixed(3)`), null as an en dash. Scores are in the model's units; rates are fractions.
 */
export function formatValue(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  return Number.isInteger(v) ? String(v) : v.toFixed(3);
}

/** A JSON pointer (RFC 6901) from path segments: ["configs", 0, "kMax"] → "/configs/0/kMax". */
export function pointer(path: readonly (string | number)[]): string {
  return path.map((p) => `/${String(p).replace(/~/g, "~0").replace(/\//g, "~1")}`).join("");
}

/**
 * A numeric table cell: the value formatted by formatValue, with `data-value` (the exact number as
 * JSON writes it) and `data-json` (its pointer into the document named by `doc`: "run" or "pairs").
 */
export function numCell(v: number | null, doc: "run" | "pairs", path: readonly (string | number)[]): string {
  const exact = v === null ? "null" : JSON.stringify(v);
  return `<td class="num" data-doc="${doc}" data-json="${esc(pointer(path))}" data-value="${esc(exact)}">${formatValue(v)}</td>`;
}

/** A text cell. */
export function textCell(s: string): string {
  return `<td>${esc(s)}</td>`;
}

/** A table with a caption, a header row and body rows (rows are already-built `<td>` strings). */
export function table(caption: string, head: readonly string[], rows: readonly string[][], id?: string): string {
  const th = head.map((h) => `<th>${esc(h)}</th>`).join("");
  const body = rows.map((r) => `<tr>${r.join("")}</tr>`).join("\n");
  const idAttr = id ? ` id="${esc(id)}"` : "";
  return `<table${idAttr}><caption>${esc(caption)}</caption><thead><tr>${th}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

/** JSON for a `<script type="application/json">` block: `<` escaped so no `</script>` can end it early. */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c");
}
