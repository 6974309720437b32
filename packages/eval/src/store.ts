/**
 * The evaluation's store: one embedded DuckDB database file per evaluation folder. Every candidate is
 * inserted the moment its image is on disk, and its scores the moment they are computed, each in its
 * own committed transaction (DuckDB fsyncs its write-ahead log at commit), so a run killed at any point
 * (`kill -9` included) loses nothing it had reported and a resumed run renders nothing already stored.
 *
 * Why DuckDB (README, dependency table): it installs from the npm registry alone (the native library
 * comes as a per-platform npm package, no install script, no download), and it reads Parquet, which
 * `pickrank eval pairs` needs for the Pick-a-Pic files.
 *
 * The API is deliberately small, for the commands and for queue workers built on top of it:
 * `EvalStore.open`, `insertCandidate` (idempotent by (config, promptId, seedIndex)), `setScores`,
 * `doneKeys`, `candidates`, plus pairs and a key/value `meta` table for the run's settings.
 * Calls on one store are serialized; one process at a time holds the file (DuckDB's lock): another
 * process opening it gets CONFLICT.
 */
import { BIGINT, DOUBLE, VARCHAR, type DuckDBConnection, type DuckDBInstance, type DuckDBType, type DuckDBValue } from "@duckdb/node-api";
import { PickrankError, fsError, makeDir } from "@pickrank/contract";
import path from "node:path";
import type { CandidateRow, EvalPrompt, PairRow } from "./records.ts";

/** The database file's name inside an evaluation folder. */
export const STORE_FILE = "eval.duckdb";

/** A candidate as first stored: rendered (its image on disk), not necessarily scored yet. */
export interface StoredCandidate {
  config: string;
  promptId: string;
  seedIndex: number;
  /** The seed the backend rendered with; null when unknown (`eval images`). */
  seed: number | null;
  /** Image path, relative to the evaluation folder (or absolute for `eval images`). */
  image: string;
  /** "png" | "jpeg" | "webp" … */
  format: string;
  /** The server that rendered it (no credentials); null for images made elsewhere. */
  backend: string | null;
  /** Rendering time on the server (ms), when known. */
  renderMs: number | null;
}

/** A stored candidate with its scores (null until scored). */
export interface CandidateRecord extends StoredCandidate {
  score: number | null;
  judgeScore: number | null;
}

/** The identity of a candidate: configuration, prompt id, seed index. */
export interface CandidateKey {
  config: string;
  promptId: string;
  seedIndex: number;
}

/** `config \t promptId \t seedIndex`: the key as one string (what doneKeys returns). */
export function candidateKey(k: CandidateKey): string {
  return `${k.config}\t${k.promptId}\t${k.seedIndex}`;
}

const SCHEMA = `
create table if not exists meta (key varchar primary key, value varchar not null);
create table if not exists prompts (id varchar primary key, text varchar not null, category varchar, challenge varchar);
create table if not exists candidates (
  config varchar not null, prompt_id varchar not null, seed_index integer not null, seed bigint,
  image varchar not null, format varchar not null, backend varchar, render_ms double,
  score double, judge_score double, created_at timestamp default current_timestamp,
  primary key (config, prompt_id, seed_index));
create table if not exists pairs (
  id varchar primary key, caption varchar not null, split varchar not null,
  label0 double not null, label1 double not null, score0 double not null, score1 double not null);
`;

/**
 * An open evaluation database. Open with `EvalStore.open(file)`, close with `close()`.
 * Methods throw FILESYSTEM (with the file) when DuckDB fails to read or write it.
 */
export class EvalStore {
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(
    /** Absolute path of the database file. */
    readonly file: string,
    private readonly instance: DuckDBInstance,
    private readonly conn: DuckDBConnection,
  ) {}

  /**
   * Opens (creating when missing, with its folder) the database at `file` and its tables.
   * @throws CONFLICT when another process holds the file; FILESYSTEM / NOT_FOUND when it cannot be made or read.
   */
  static async open(file: string): Promise<EvalStore> {
    const abs = path.resolve(file);
    await makeDir(path.dirname(abs));
    const { DuckDBInstance } = await import("@duckdb/node-api");
    let instance: DuckDBInstance;
    try {
      instance = await DuckDBInstance.create(abs);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (/lock/i.test(msg))
        throw new PickrankError("CONFLICT", `Expected ${abs} to be free but another pickrank process has it open (${msg.split("\n")[0]})`, {
          cause: e,
          details: { dir: path.dirname(abs) },
        });
      throw new PickrankError("FILESYSTEM", `Could not open the evaluation database ${abs}: ${msg.split("\n")[0]}`, {
        cause: e,
        details: { path: abs },
      });
    }
    const conn = await instance.connect();
    const store = new EvalStore(abs, instance, conn);
    await store.#run(SCHEMA);
    return store;
  }

  /** Runs `fn` after every earlier call on this store has finished (one connection, one statement at a time). */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(() => {
      if (this.#closed)
        throw new PickrankError("CLOSED", `The evaluation database ${this.file} is closed`, { details: { what: "EvalStore" } });
      return fn();
    });
    this.#queue = next.catch(() => {});
    return next;
  }

  #run(sql: string, values?: Record<string, DuckDBValue>, types?: Record<string, DuckDBType>): Promise<void> {
    return this.#serial(async () => {
      try {
        await this.conn.run(sql, values, types);
      } catch (e) {
        throw this.#error(e);
      }
    });
  }

  #read<T>(sql: string, values?: Record<string, DuckDBValue>): Promise<T[]> {
    return this.#serial(async () => {
      try {
        return (await this.conn.runAndReadAll(sql, values)).getRowObjectsJS() as T[];
      } catch (e) {
        throw this.#error(e);
      }
    });
  }

  #error(e: unknown): PickrankError {
    return fsError(e, { action: "write the evaluation database", path: this.file });
  }

  /** The value stored under `key` in the meta table (JSON-decoded), or undefined. */
  async getMeta<T = unknown>(key: string): Promise<T | undefined> {
    const rows = await this.#read<{ value: string }>("select value from meta where key = $key", { key });
    return rows[0] ? (JSON.parse(rows[0].value) as T) : undefined;
  }

  /** Stores `value` (as JSON) under `key`, replacing what was there. */
  async setMeta(key: string, value: unknown): Promise<void> {
    await this.#run("insert or replace into meta values ($key, $value)", { key, value: JSON.stringify(value) });
  }

  /** Records the prompts of the run (idempotent by id; a later call keeps the first text). */
  async insertPrompts(prompts: readonly EvalPrompt[]): Promise<void> {
    await this.#serial(async () => {
      try {
        await this.conn.run("begin transaction");
        for (const p of prompts)
          await this.conn.run(
            "insert into prompts values ($id, $text, $category, $challenge) on conflict do nothing",
            { id: p.id, text: p.text, category: p.category ?? null, challenge: p.challenge ?? null },
            { category: VARCHAR, challenge: VARCHAR },
          );
        await this.conn.run("commit");
      } catch (e) {
        await this.conn.run("rollback").catch(() => {});
        throw this.#error(e);
      }
    });
  }

  /** The prompts recorded by insertPrompts, in id order. */
  async prompts(): Promise<EvalPrompt[]> {
    const rows = await this.#read<{ id: string; text: string; category: string | null; challenge: string | null }>(
      "select id, text, category, challenge from prompts order by id",
    );
    return rows.map((r) => ({
      id: r.id,
      text: r.text,
      ...(r.category !== null ? { category: r.category } : {}),
      ...(r.challenge !== null ? { challenge: r.challenge } : {}),
    }));
  }

  /**
   * Inserts a rendered candidate, committed at once. Idempotent: when (config, promptId, seedIndex)
   * is already stored, nothing changes and it returns false (the first insert wins).
   */
  async insertCandidate(c: StoredCandidate): Promise<boolean> {
    const before = await this.#read<{ n: number }>(
      "select count(*)::integer as n from candidates where config = $config and prompt_id = $promptId and seed_index = $seedIndex",
      { config: c.config, promptId: c.promptId, seedIndex: c.seedIndex },
    );
    if ((before[0]?.n ?? 0) > 0) return false;
    await this.#run(
      "insert into candidates (config, prompt_id, seed_index, seed, image, format, backend, render_ms) " +
        "values ($config, $promptId, $seedIndex, $seed, $image, $format, $backend, $renderMs) on conflict do nothing",
      {
        config: c.config,
        promptId: c.promptId,
        seedIndex: c.seedIndex,
        seed: c.seed === null ? null : BigInt(c.seed),
        image: c.image,
        format: c.format,
        backend: c.backend,
        renderMs: c.renderMs,
      },
      { seed: BIGINT, backend: VARCHAR, renderMs: DOUBLE },
    );
    return true;
  }

  /** Sets a stored candidate's scores (committed at once). `judgeScore` null: no judge. */
  async setScores(k: CandidateKey, scores: { score: number; judgeScore: number | null }): Promise<void> {
    await this.#run(
      "update candidates set score = $score, judge_score = $judge " +
        "where config = $config and prompt_id = $promptId and seed_index = $seedIndex",
      { score: scores.score, judge: scores.judgeScore, config: k.config, promptId: k.promptId, seedIndex: k.seedIndex },
      { judge: DOUBLE },
    );
  }

  /**
   * Keys (candidateKey) of the candidates stored with a score — with a judge score too when
   * `withJudge` — optionally of one configuration. What a resumed run or a queue worker skips.
   */
  async doneKeys(o: { config?: string; withJudge?: boolean } = {}): Promise<Set<string>> {
    const where = ["score is not null", ...(o.withJudge ? ["judge_score is not null"] : []), ...(o.config ? ["config = $config"] : [])];
    const rows = await this.#read<{ config: string; prompt_id: string; seed_index: number }>(
      `select config, prompt_id, seed_index from candidates where ${where.join(" and ")}`,
      o.config ? { config: o.config } : undefined,
    );
    return new Set(rows.map((r) => candidateKey({ config: r.config, promptId: r.prompt_id, seedIndex: r.seed_index })));
  }

  /** Every stored candidate, scored or not, ordered by config, prompt id and seed index. */
  async candidates(o: { config?: string } = {}): Promise<CandidateRecord[]> {
    const rows = await this.#read<Record<string, unknown>>(
      "select config, prompt_id, seed_index, seed::double as seed, image, format, backend, render_ms, score, judge_score " +
        `from candidates ${o.config ? "where config = $config " : ""}order by config, prompt_id, seed_index`,
      o.config ? { config: o.config } : undefined,
    );
    return rows.map((r) => ({
      config: r["config"] as string,
      promptId: r["prompt_id"] as string,
      seedIndex: r["seed_index"] as number,
      seed: r["seed"] as number | null,
      image: r["image"] as string,
      format: r["format"] as string,
      backend: r["backend"] as string | null,
      renderMs: r["render_ms"] as number | null,
      score: r["score"] as number | null,
      judgeScore: r["judge_score"] as number | null,
    }));
  }

  /** The scored candidates as the metrics read them (records.ts CandidateRow). */
  async candidateRows(): Promise<CandidateRow[]> {
    return (await this.candidates())
      .filter((c): c is CandidateRecord & { score: number } => c.score !== null)
      .map((c) => ({
        config: c.config,
        promptId: c.promptId,
        seedIndex: c.seedIndex,
        seed: c.seed,
        score: c.score,
        judgeScore: c.judgeScore,
        image: c.image,
      }));
  }

  /** Inserts a scored pair (committed at once); idempotent by id (returns false when it was stored). */
  async insertPair(p: PairRow): Promise<boolean> {
    const before = await this.#read<{ n: number }>("select count(*)::integer as n from pairs where id = $id", { id: p.id });
    if ((before[0]?.n ?? 0) > 0) return false;
    await this.#run("insert into pairs values ($id, $caption, $split, $label0, $label1, $score0, $score1) on conflict do nothing", {
      id: p.id,
      caption: p.caption,
      split: p.split,
      label0: p.label0,
      label1: p.label1,
      score0: p.score0,
      score1: p.score1,
    });
    return true;
  }

  /** Ids of the pairs stored. */
  async pairIds(): Promise<Set<string>> {
    return new Set((await this.#read<{ id: string }>("select id from pairs")).map((r) => r.id));
  }

  /** Every stored pair, by id. */
  async pairs(): Promise<PairRow[]> {
    const rows = await this.#read<PairRow & { split: string }>(
      "select id, caption, split, label0, label1, score0, score1 from pairs order by id",
    );
    return rows.map((r) => ({ ...r, split: r.split === "validation" ? "validation" : "test" }));
  }

  /**
   * Runs a read-only SQL query through this store's connection (e.g. `read_parquet(…)` for the
   * Pick-a-Pic files) and returns its rows as plain JS values (BLOB → Uint8Array/Buffer).
   * @throws BAD_INPUT with DuckDB's message when the query fails.
   */
  async query(sql: string, values?: Record<string, DuckDBValue>): Promise<Record<string, unknown>[]> {
    return this.#serial(async () => {
      try {
        return (await this.conn.runAndReadAll(sql, values)).getRowObjectsJS() as Record<string, unknown>[];
      } catch (e) {
        throw new PickrankError("BAD_INPUT", (e instanceof Error ? e.message : String(e)).split("\n")[0]!, { cause: e });
      }
    });
  }

  /** Closes the connection and the database (a checkpoint folds the log into the file). Idempotent. */
  async close(): Promise<void> {
    await this.#queue;
    if (this.#closed) return;
    this.#closed = true;
    this.conn.closeSync();
    this.instance.closeSync();
  }
}
