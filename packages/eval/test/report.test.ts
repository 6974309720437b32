/**
 * The HTML report, in Node and in headless Chromium (Debian's /usr/bin/chromium through playwright-core;
 * no browser is downloaded). In the browser every request that is not file: or data: is aborted and
 * counted, and the context is offline: the report must draw everything without the network.
 * Without Chromium the browser tests are skipped, saying so; PICKRANK_REQUIRE_CHROMIUM (set by .ci/run)
 * makes them fail instead.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatValue, imageSrc, type RunSummary, renderReport, summarizePairs, summarizeRun } from "../src/index.ts";
import { candidateRows, PNG_1x1, pairRows, prompts } from "./report-data.ts";

const CHROMIUM = process.env.PICKRANK_TEST_CHROMIUM ?? "/usr/bin/chromium";
const hasChromium = existsSync(CHROMIUM);
const required = Boolean(process.env.PICKRANK_REQUIRE_CHROMIUM);
const FLAGS = [
  "--no-sandbox",
  "--headless",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const rows = candidateRows();
const run = summarizeRun(prompts, rows, { bootstrap: { seed: 11, resamples: 300 } });
const pairs = summarizePairs(pairRows(), { bootstrap: { seed: 11, resamples: 300 } });
const docs = { run, pairs } as Record<string, unknown>;

/** Resolves an RFC 6901 pointer in a JSON value. */
function resolve(doc: unknown, ptr: string): unknown {
  if (ptr === "") return doc;
  return ptr
    .slice(1)
    .split("/")
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce<unknown>((v, key) => (v as Record<string, unknown>)[key], doc);
}

describe("renderReport (HTML string)", () => {
  const html = renderReport({ title: "Eval <test>", run, pairs, prompts, rows });

  it("is one file: ECharts inlined, no external script, stylesheet or font", () => {
    expect(html.startsWith("<!doctype html>")).toBe(true);
    // Booleans, so a failure does not print a megabyte of HTML.
    expect(/<script[^>]+src=/i.test(html)).toBe(false);
    expect(/<link/i.test(html)).toBe(false);
    expect(/@import|url\(\s*['"]?(https?:)?\/\//i.test(html)).toBe(false);
    expect(html.includes("Apache License")).toBe(true); // ECharts' licence header travels with its code
    expect(html.includes("<title>Eval &lt;test&gt;</title>")).toBe(true);
  });

  it("names the interval level as given (57 %, not 56.99999999999999 %)", () => {
    const r57 = summarizeRun(prompts, rows, { bootstrap: { seed: 1, resamples: 20, confidence: 0.57 } });
    expect(renderReport({ run: r57 }).includes("Selector (57 % intervals")).toBe(true);
  });

  it("gives every element a unique id", () => {
    const ids = [...html.matchAll(/ id="([^"]+)"/g)].map((m) => m[1]);
    expect(ids.length).toBeGreaterThan(10);
    expect(ids.filter((id, i) => ids.indexOf(id) !== i)).toEqual([]);
  });

  it("escapes prompt text and percent-encodes image paths", () => {
    expect(html.includes("a fox in the snow &lt;at dawn&gt; &amp; &quot;quoted&quot;")).toBe(true);
    expect(html.includes('src="images/sdxl%20turbo/x/p1%200.png"')).toBe(true);
  });

  it("every table number equals the summary JSON's value at its pointer, in the documented format", () => {
    const cells = [...html.matchAll(/<td class="num" data-doc="(\w+)" data-json="([^"]*)" data-value="([^"]*)">([^<]*)<\/td>/g)];
    expect(cells.length).toBeGreaterThan(150);
    for (const [, doc, ptr, value, text] of cells) {
      const v = resolve(docs[doc!], ptr!.replace(/&quot;/g, '"'));
      expect(typeof v === "number" || v === null).toBe(true);
      expect(JSON.parse(value!)).toBe(v);
      expect(text).toBe(formatValue(v as number | null));
    }
  });

  it("BAD CALL - a network image URL or nothing to report is BAD_INPUT", () => {
    expect(() => imageSrc("https://example.com/a.png")).toThrow(/the report works offline/);
    expect(() => imageSrc("//cdn.example.com/a.png")).toThrow(expect.objectContaining({ code: "BAD_INPUT" }));
    expect(() => imageSrc("data:text/html;base64,AAAA")).toThrow(expect.objectContaining({ code: "BAD_INPUT" }));
    expect(() => renderReport({ run, rows, images: { [rows[0]!.image]: "http://x/y.png" } })).toThrow(/works offline/);
    expect(() => renderReport({})).toThrow(expect.objectContaining({ code: "BAD_INPUT" }));
  });
});

const why =
  hasChromium || required ? "" : ` — skipped: no Chromium at ${CHROMIUM} (Debian's chromium package; or set PICKRANK_TEST_CHROMIUM)`;
if (why) console.warn(`report in headless Chromium${why}`);

describe.runIf(hasChromium || required)(`report in headless Chromium${why}`, { timeout: 180_000 }, () => {
  let tmp: string;
  type Browser = Awaited<ReturnType<typeof import("playwright-core")["chromium"]["launchPersistentContext"]>>;
  let context: Browser;
  const requests: string[] = [];
  const blocked: string[] = [];
  const errors: string[] = [];

  beforeAll(async () => {
    if (!hasChromium) throw new Error(`PICKRANK_REQUIRE_CHROMIUM is set but there is no Chromium at ${CHROMIUM}`);
    tmp = mkdtempSync(path.join(os.tmpdir(), "pickrank-report-"));
    for (const r of rows) {
      mkdirSync(path.dirname(path.join(tmp, r.image)), { recursive: true });
      writeFileSync(path.join(tmp, r.image), PNG_1x1);
    }
    // One image given as a data URI, one as an absolute path: both kinds the input type allows.
    const images = {
      [rows[0]!.image]: `data:image/png;base64,${PNG_1x1.toString("base64")}`,
      [rows[1]!.image]: path.join(tmp, rows[1]!.image),
    };
    writeFileSync(path.join(tmp, "report.html"), renderReport({ run, pairs, prompts, rows, images }));
    // Variants: two configurations without judge scores or prompt groups; pairs alone with a given threshold.
    const plain = rows.filter((r) => r.config !== "sd15").map((r) => ({ ...r, judgeScore: null }));
    const bare = prompts.map((p) => ({ id: p.id, text: p.text }));
    const given = summarizePairs(pairRows(), { tieThreshold: 0.2 });
    writeFileSync(path.join(tmp, "plain.html"), renderReport({ run: summarizeRun(bare, plain), prompts: bare, rows: plain }));
    writeFileSync(path.join(tmp, "pairs.html"), renderReport({ pairs: given, title: "pairs only" }));
    const { chromium } = await import("playwright-core");
    context = await chromium.launchPersistentContext(path.join(tmp, "profile"), {
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
      offline: true,
    });
    await context.route("**/*", (route) => {
      const url = route.request().url();
      if (url.startsWith("file:") || url.startsWith("data:")) return route.continue();
      blocked.push(url);
      return route.abort();
    });
  });
  afterAll(async () => {
    await context?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("draws every figure with no console error and no network request", async () => {
    const page = await context.newPage();
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("request", (r) => requests.push(r.url()));
    await page.goto(pathToFileURL(path.join(tmp, "report.html")).href, { waitUntil: "load" });
    await page.waitForFunction(() => [...document.querySelectorAll(".figure")].every((e) => e.hasAttribute("data-rendered")));
    const figures = await page.$$eval(".figure", (els) =>
      els.map((e) => ({ id: e.id, state: e.getAttribute("data-rendered"), paths: e.querySelectorAll("svg path").length })),
    );
    expect(figures.map((f) => f.id).sort()).toEqual(
      [
        "fig-curve-judge",
        "fig-curve-selector",
        "fig-dist-judge",
        "fig-dist-selector",
        "fig-group-category",
        "fig-group-challenge",
        "fig-pairs-sweep",
        "fig-win-judge",
        "fig-win-selector",
      ].sort(),
    );
    for (const f of figures) {
      expect(f.state, f.id).toBe("true");
      expect(f.paths, f.id).toBeGreaterThan(3);
    }
    const images = await page.$$eval(".tile img", (els) => els.map((e) => (e as HTMLImageElement).naturalWidth));
    expect(images).toHaveLength(rows.length);
    // Lazy images outside the viewport are not fetched; load them all to check every source resolves.
    await page.$$eval("img", (els) => els.forEach((e) => e.setAttribute("loading", "eager")));
    await page.waitForFunction(() => [...document.images].every((i) => i.complete));
    const broken = await page.$$eval(".tile img", (els) =>
      els.filter((e) => !(e as HTMLImageElement).naturalWidth).map((e) => e.getAttribute("src")),
    );
    expect(broken).toEqual([]);
    expect(errors).toEqual([]);
    expect(blocked).toEqual([]);
    expect(requests.filter((u) => !u.startsWith("file:") && !u.startsWith("data:"))).toEqual([]);
    await page.close();
  });

  it("variants draw only the figures they have data for, without errors", async () => {
    const seen: string[] = [];
    for (const [file, expected] of [
      ["plain.html", ["fig-curve-selector", "fig-dist-selector", "fig-win-selector"]],
      ["pairs.html", []],
    ] as const) {
      const page = await context.newPage();
      page.on("console", (m) => m.type() === "error" && seen.push(`${file}: ${m.text()}`));
      page.on("pageerror", (e) => seen.push(`${file}: ${e}`));
      await page.goto(pathToFileURL(path.join(tmp, file)).href, { waitUntil: "load" });
      await page.waitForFunction(() => [...document.querySelectorAll(".figure")].every((e) => e.hasAttribute("data-rendered")));
      const figures = await page.$$eval(".figure", (els) => els.map((e) => [e.id, e.getAttribute("data-rendered")]));
      expect(figures).toEqual(expected.map((id) => [id, "true"]));
      expect(await page.locator("#pairs-table").count()).toBe(file === "pairs.html" ? 1 : 0);
      await page.close();
    }
    expect(seen).toEqual([]);
  });

  it("the figures plot the summary's numbers", async () => {
    const page = await context.newPage();
    await page.goto(pathToFileURL(path.join(tmp, "report.html")).href, { waitUntil: "load" });
    await page.waitForFunction(() => [...document.querySelectorAll(".figure")].every((e) => e.hasAttribute("data-rendered")));
    const series = await page.evaluate(() => {
      type Series = { name: string; data: unknown[] };
      type ECharts = { getInstanceByDom(el: Element | null): { getOption(): { series: Series[] } } };
      const echarts = (window as unknown as { echarts: ECharts }).echarts;
      const get = (id: string) =>
        echarts
          .getInstanceByDom(document.getElementById(id))
          .getOption()
          .series.map((s) => ({ name: s.name, data: s.data }));
      return {
        curve: get("fig-curve-selector"),
        judge: get("fig-curve-judge"),
        box: get("fig-dist-selector"),
        win: get("fig-win-selector"),
      };
    });
    const r = run as RunSummary;
    for (const c of r.configs) {
      expect(series.curve.find((s) => s.name === c.config)!.data).toEqual(c.selector.curve.points.map((p) => p.estimate));
      expect(series.curve.find((s) => s.name === `${c.config} (interval low)`)!.data).toEqual(c.selector.curve.points.map((p) => p.lo));
      expect(series.judge.find((s) => s.name === c.config)!.data).toEqual(c.judge!.curve.points.map((p) => p.estimate));
    }
    const d = r.configs.map((c) => c.selector.distribution);
    expect(series.box[0]!.data).toEqual(d.map((x) => [x.min, x.q1, x.median, x.q3, x.max]));
    const names = r.configs.map((c) => c.config);
    const cells = r.winRates.filter((w) => w.score === "selector").map((w) => [names.indexOf(w.b), names.indexOf(w.a), w.rate!.estimate]);
    expect(series.win[0]!.data).toEqual(cells);
    await page.close();
  });

  it("the gallery shows each prompt's pick first, per configuration", async () => {
    const page = await context.newPage();
    await page.goto(pathToFileURL(path.join(tmp, "report.html")).href, { waitUntil: "load" });
    const firsts = await page.$$eval(".gallery-prompt", (secs) =>
      secs.map((s) => ({
        id: s.getAttribute("data-prompt-id"),
        rows: [...s.querySelectorAll(".tiles")].map((t) => {
          const f = t.querySelector("figure")!;
          return { pick: f.classList.contains("pick"), seed: Number(f.getAttribute("data-seed-index")), tiles: t.children.length };
        }),
      })),
    );
    expect(firsts).toHaveLength(prompts.length);
    for (const sec of firsts) {
      sec.rows.forEach((row, ci) => {
        const ps = run.configs[ci]!.perPrompt.find((p) => p.promptId === sec.id)!;
        expect(row).toEqual({ pick: true, seed: ps.pickSeedIndex, tiles: 4 });
      });
    }
    await page.close();
  });
});
