/**
 * Where the Hugging Face access token comes from, in huggingface_hub's own order, so a user who ran
 * `huggingface-cli login` (or `hf auth login`) once needs nothing more:
 *   1. the `token` option (given but empty: no token at all),
 *   2. $HF_TOKEN, then the older $HUGGING_FACE_HUB_TOKEN,
 *   3. the token file: $HF_TOKEN_PATH, else $HF_HOME/token, else $XDG_CACHE_HOME/huggingface/token,
 *      else ~/.cache/huggingface/token.
 * Empty values count as unset (as huggingface_hub cleans them). $HF_HUB_DISABLE_IMPLICIT_TOKEN turns
 * off 2 and 3, as it does there. The source is kept so a refused token can be named in the error.
 */
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

export interface HubToken {
  token: string;
  /** "the token option", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN" or the token file's path. */
  source: string;
}

function clean(v: string | undefined): string | undefined {
  const t = v?.replace(/\r|\n/g, "").trim();
  return t ? t : undefined;
}

/** An on/off environment variable as huggingface_hub reads them: 1, true, yes or on. */
export function envFlag(v: string | undefined): boolean {
  return v !== undefined && /^(1|true|yes|on)$/i.test(v.trim());
}

/** The token file huggingface_hub reads and `huggingface-cli login` writes. */
export function hfTokenPath(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = clean(env.HF_TOKEN_PATH);
  if (explicit) return path.resolve(explicit.replace(/^~(?=$|\/)/, os.homedir()));
  const home = clean(env.HF_HOME);
  if (home) return path.join(path.resolve(home.replace(/^~(?=$|\/)/, os.homedir())), "token");
  const xdg = clean(env.XDG_CACHE_HOME);
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), ".cache"), "huggingface", "token");
}

/**
 * The token to send, and where it came from; undefined when there is none. A `token` option that is
 * given, even empty, wins: "" asks for anonymous access whatever the environment holds.
 */
export function resolveHubToken(option?: string, env: NodeJS.ProcessEnv = process.env): HubToken | undefined {
  if (option !== undefined) {
    const given = clean(option);
    return given ? { token: given, source: "the token option" } : undefined;
  }
  if (envFlag(env.HF_HUB_DISABLE_IMPLICIT_TOKEN)) return undefined;
  for (const name of ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"] as const) {
    const v = clean(env[name]);
    if (v) return { token: v, source: name };
  }
  const file = hfTokenPath(env);
  try {
    const v = clean(readFileSync(file, "utf8"));
    if (v) return { token: v, source: file };
  } catch {
    // No token file: anonymous access, which is all PickScore_v1 needs.
  }
  return undefined;
}
