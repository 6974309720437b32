/**
 * Bearer-token check in constant time: both sides are hashed to 32 bytes first, so neither the
 * token's length nor the position of the first wrong byte shows in the time taken.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { PickrankError } from "@pickrank/contract";

function digest(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}

/**
 * Returns a checker of `Authorization` header values for `token`. The checker throws UNAUTHORIZED
 * (401) for a missing header, another scheme, or a wrong token.
 */
export function bearerChecker(token: string): (authorization: string | undefined) => void {
  const expected = digest(token);
  return (authorization) => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
    if (!m) {
      throw new PickrankError("UNAUTHORIZED", "Expected an Authorization: Bearer <token> header; this server requires its token", {
        details: { expected: "Authorization: Bearer <token>" },
      });
    }
    if (!timingSafeEqual(digest(m[1]!), expected)) {
      throw new PickrankError("UNAUTHORIZED", "Expected the server's token in Authorization: Bearer <token> but received another one");
    }
  };
}
