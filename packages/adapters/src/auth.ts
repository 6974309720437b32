/**
 * Credentials from places that stay out of `ps` and shell history: a file (--auth-file) or the
 * PICKRANK_AUTH environment variable, besides the plain option (--auth).
 */
import { readFile } from "node:fs/promises";
import { fsError, PickrankError } from "@pickrank/contract";

/** The environment variable read for credentials: "user:password" or a full Authorization header value. */
export const AUTH_ENV = "PICKRANK_AUTH";

/**
 * Where resolveAuth looks for backend credentials, in order: the --auth value, the --auth-file file,
 * the PICKRANK_AUTH environment variable.
 */
export interface AuthSources {
  /** Given directly (the --auth option). */
  auth?: string | undefined;
  /** A file whose first line holds the credentials (the --auth-file option). */
  authFile?: string | undefined;
  /** The environment to read PICKRANK_AUTH from (default process.env). */
  env?: Record<string, string | undefined>;
}

/** The credentials resolveAuth found and which source they came from (the value is never put in messages). */
export interface ResolvedAuth {
  /** "user:password" or a full Authorization header value, for BackendSpec.auth. */
  auth: string;
  /** Where it came from, for messages (never the value). */
  source: "--auth" | "--auth-file" | typeof AUTH_ENV;
}

/**
 * The credentials to use: `auth`, else the first line of `authFile` (trailing newline and spaces
 * dropped), else PICKRANK_AUTH; undefined when none is set. Throws BAD_INPUT when two of --auth and
 * --auth-file are given or a source is empty, NOT_FOUND / FILESYSTEM (naming --auth-file) when the
 * file cannot be read. Never puts the value in a message.
 */
export async function resolveAuth(s: AuthSources): Promise<ResolvedAuth | undefined> {
  if (s.auth !== undefined && s.authFile !== undefined) {
    throw new PickrankError("BAD_INPUT", "Expected one of --auth or --auth-file but received both", {
      details: { parameter: "--auth-file" },
    });
  }
  if (s.auth !== undefined) return { auth: nonEmpty(s.auth, "--auth"), source: "--auth" };
  if (s.authFile !== undefined) {
    let text: string;
    try {
      text = await readFile(s.authFile, "utf8");
    } catch (e) {
      throw fsError(e, {
        action: "read the credentials file",
        path: s.authFile,
        option: "--auth-file",
        expected: "a readable file holding user:password",
      });
    }
    const lines = text
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l !== "");
    if (lines.length !== 1) {
      throw new PickrankError(
        "BAD_INPUT",
        `Expected one line (user:password or an Authorization header value) in the --auth-file ${s.authFile} but found ${lines.length}`,
        {
          details: { parameter: "--auth-file", option: "--auth-file" },
        },
      );
    }
    return { auth: lines[0]!, source: "--auth-file" };
  }
  const fromEnv = (s.env ?? process.env)[AUTH_ENV];
  if (fromEnv !== undefined && fromEnv !== "") return { auth: nonEmpty(fromEnv, AUTH_ENV), source: AUTH_ENV };
  return undefined;
}

function nonEmpty(v: string, where: string): string {
  const t = v.trim();
  if (t === "")
    throw new PickrankError("BAD_INPUT", `Expected user:password or an Authorization header value in ${where} but it is empty`, {
      details: { parameter: where },
    });
  return t;
}
