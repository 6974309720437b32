/**
 * Prompt syntax of Automatic1111 / Forge and ComfyUI, removed so that PickScore reads the caption and
 * not the control syntax. PickScore was trained on Pick-a-Pic captions: plain sentences, no
 * `(masterpiece:1.2)`, no `<lora:…>`. Scored literally, those tokens pull every candidate's score the
 * same way and crowd the caption out of CLIP's 77 tokens.
 *
 * What each construct becomes (the words stay, the syntax goes; the rule for choices is "what the
 * finished image shows"):
 *
 * | written                              | scored as         | why                                                 |
 * | ------------------------------------ | ----------------- | --------------------------------------------------- |
 * | `(word)` `((word))` `(word:1.2)`     | `word`            | emphasis and weights (A1111 and ComfyUI alike)      |
 * | `[word]`                             | `word`            | de-emphasis                                         |
 * | `[from:to:0.5]` `[from:to:12]`       | `to`              | prompt editing: the last steps render `to`          |
 * | `[to:0.5]` / `[from::0.5]`           | `to` / nothing    | added late / removed late                           |
 * | `[a\|b]` `{a\|b}` `{2$$a\|b\|c}`     | `a b` (`a b c`)   | alternation, dynamic prompts: every option, so the  |
 * |                                      |                   | text favours none of the candidates' variants       |
 * | `__colors__` (dynamic-prompts file)  | `colors`          | the wildcard's name                                 |
 * | `<lora:x:0.8>` `<lyco:…>` `<hypernet:…>` | nothing       | network tags (any `<name:…>`)                       |
 * | `embedding:name` (ComfyUI)           | nothing           | textual-inversion tag                               |
 * | `BREAK`, `AND`, `a:1.2 AND b`        | `,`               | chunk and sub-prompt separators, sub-prompt weights |
 * | `\(` `\)` `\[` `\]` `\{` `\}` `\\`   | `(` `)` …         | escapes: the literal character                      |
 *
 * Then the separators the removals leave are tidied: runs of commas and spaces become one `, `, and
 * none stays at either end ("a cat, , <lora:x:1>, BREAK dog" → "a cat, dog"). Unbalanced brackets
 * are closed at the end of the text (A1111 does the same) and a stray closing bracket is dropped.
 */

type Node = { k: "text"; s: string } | { k: "sep"; s: ":" | "|" } | { k: "group"; open: "(" | "[" | "{"; body: Node[] } | { k: "tag" };

const CLOSE: Record<string, string> = { "(": ")", "[": "]", "{": "}" };
const ESCAPABLE = new Set(["(", ")", "[", "]", "{", "}", "\\"]);
/** Characters that end a plain text run. */
const SPECIAL = new Set(["\\", "(", ")", "[", "]", "{", "}", "<", ":", "|", "e"]);
const NETWORK_TAG = /^<[A-Za-z][\w-]*:[^<>]*>/;
const EMBEDDING = /^embedding:[^\s,()[\]{}|<>:]+/;
const NUMBER = /^\s*[+-]?(?:\d+\.?\d*|\.\d+)\s*$/;
/** A1111's sub-prompt weight at the end of an AND part ("a cat :1.2"). */
const AND_WEIGHT = /\s*:\s*[+-]?(?:\d+\.?\d*|\.\d+)\s*$/;

interface Parsed {
  nodes: Node[];
  end: number;
}

/** Parses until `close` (or the end); `i` is the first character after the opening bracket. */
function parseSeq(src: string, i: number, close: string | undefined): Parsed {
  const nodes: Node[] = [];
  const text = (s: string) => {
    const last = nodes.at(-1);
    if (last?.k === "text") last.s += s;
    else nodes.push({ k: "text", s });
  };
  while (i < src.length) {
    const c = src[i]!;
    if (c === "\\" && ESCAPABLE.has(src[i + 1] ?? "")) {
      text(src[i + 1]!);
      i += 2;
    } else if (c === "(" || c === "[" || c === "{") {
      const inner = parseSeq(src, i + 1, CLOSE[c]);
      nodes.push({ k: "group", open: c, body: inner.nodes });
      i = inner.end;
    } else if (c === close) {
      return { nodes, end: i + 1 };
    } else if (c === ")" || c === "]" || c === "}") {
      i++; // a stray closing bracket: a typo, not a word
    } else if (c === "<" && NETWORK_TAG.test(src.slice(i))) {
      nodes.push({ k: "tag" });
      i += NETWORK_TAG.exec(src.slice(i))![0].length;
    } else if (c === "e" && (i === 0 || /[\s,([{|]/.test(src[i - 1]!)) && EMBEDDING.test(src.slice(i))) {
      nodes.push({ k: "tag" });
      i += EMBEDDING.exec(src.slice(i))![0].length;
    } else if (c === ":" || c === "|") {
      nodes.push({ k: "sep", s: c });
      i++;
    } else {
      let j = i + 1;
      while (j < src.length && !SPECIAL.has(src[j]!)) j++;
      text(src.slice(i, j));
      i = j;
    }
  }
  return { nodes, end: i };
}

/** Splits a node list at top-level separators `sep`. */
function split(nodes: Node[], sep: ":" | "|"): Node[][] {
  const parts: Node[][] = [[]];
  for (const n of nodes) {
    if (n.k === "sep" && n.s === sep) parts.push([]);
    else parts.at(-1)!.push(n);
  }
  return parts;
}

function isNumber(nodes: Node[] | undefined): boolean {
  return nodes !== undefined && nodes.length === 1 && nodes[0]!.k === "text" && NUMBER.test(nodes[0]!.s);
}

/** Drops dynamic prompts' count from the first option of a `{…}` (`2$$`, `1-3$$ and $$`). */
function stripOptionPrefix(option: Node[], first: boolean): Node[] {
  const [head, ...rest] = option;
  if (head?.k !== "text") return option;
  if (!first) return option;
  return [{ k: "text", s: head.s.replace(/^\s*[\d-]*\$\$(?:[^$]*\$\$)?/, "") }, ...rest];
}

function renderOptions(options: Node[][]): string {
  return options.map((o) => render(o)).join(" ");
}

function renderGroup(g: Extract<Node, { k: "group" }>): string {
  if (g.open === "(") {
    const parts = split(g.body, ":");
    return parts.length > 1 && isNumber(parts.at(-1))
      ? render(parts.slice(0, -1).flatMap((p, i) => (i > 0 ? [{ k: "sep", s: ":" } as Node, ...p] : p)))
      : render(g.body);
  }
  if (g.open === "{") {
    return renderOptions(split(g.body, "|").map((o, i) => dropWeightColons(stripOptionPrefix(o, i === 0))));
  }
  const alternatives = split(g.body, "|");
  if (alternatives.length > 1) return renderOptions(alternatives);
  const parts = split(g.body, ":");
  if (isNumber(parts.at(-1)) && (parts.length === 2 || parts.length === 3)) {
    // [to:when] → to; [from:to:when] → to; [from::when] → nothing.
    return render(parts[parts.length - 2]!);
  }
  return render(g.body);
}

/** `0.5::option` after the text pass: [text "0.5", sep ":", sep ":", …] → […]. */
function dropWeightColons(option: Node[]): Node[] {
  const [a, b, c, ...rest] = option;
  if (a?.k === "text" && /^\s*[\d.]*\s*$/.test(a.s) && b?.k === "sep" && b.s === ":" && c?.k === "sep" && c.s === ":") return rest;
  return option;
}

function renderText(s: string): string {
  return s
    .replace(/\bBREAK\b/g, ",")
    .replace(/__([\w\-/*]+?)__/g, (_m, name: string) => ` ${name.split("/").at(-1)!.replace(/[_*]+/g, " ")} `);
}

function render(nodes: Node[]): string {
  let out = "";
  for (const n of nodes) {
    if (n.k === "text") out += renderText(n.s);
    else if (n.k === "sep") out += n.s;
    else if (n.k === "tag") out += " ";
    // A1111 and ComfyUI tokenize each weighted piece on its own: "red(cat)" is "red" and "cat".
    else out += ` ${renderGroup(n)} `;
  }
  return out;
}

/** Collapses the separators that removals leave: whitespace runs, empty comma-separated items, commas at either end. */
function tidy(s: string): string {
  return s
    .replace(/\s+/g, " ")
    .replace(/\s*,[\s,]*/g, ", ")
    .replace(/\s+([.;!?])/g, "$1")
    .replace(/^[\s,]+|[\s,]+$/g, "");
}

/**
 * The text PickScore should score for an A1111 / ComfyUI prompt: the prompt's words with weights,
 * network and embedding tags, prompt-editing and alternation syntax, BREAK/AND and escapes resolved
 * as the module comment's table says. Pure and total: never throws; may return "" when the prompt
 * is nothing but syntax (the caller decides what to do then).
 */
export function scoringPrompt(prompt: string): string {
  // A1111 splits on AND (composable diffusion) before anything else; each part may end in a weight.
  const parts = prompt.split(/\bAND\b/).map((p) => p.replace(AND_WEIGHT, ""));
  return tidy(parts.map((p) => render(parseSeq(p, 0, undefined).nodes)).join(", "));
}
