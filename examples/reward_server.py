#!/usr/bin/env python3
"""PickScore rewards from `pickrank serve`, with the Python standard library only.

For reinforcement-learning loops (DDPO, GRPO, ...): send (prompt, image) pairs to POST /v1/score and
get one reward per pair, in order. Images are PNG/JPEG/WebP bytes, or raw 8-bit RGB/RGBA pixels as
{"raw": bytes, "width": w, "height": h, "channels": 3} (no encoding step: a uint8 HxWx3 array's
.tobytes() is exactly that). A failed item (an undecodable image) gets None instead of a reward; the
others are unaffected. With group_size, consecutive items form groups (one prompt each) and every
result also carries prob, the softmax within its group.

    pnpm pickrank serve --model <dir>            # in another terminal
    python3 examples/reward_server.py --prompt "a red bicycle" a.png b.png

    from reward_server import pickscore_rewards
    rewards = pickscore_rewards(["a red bicycle"] * 2, [png_a, png_b])
"""
import argparse
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request

DEFAULT_URL = os.environ.get("PICKRANK_URL", "http://127.0.0.1:7865")


class PickrankError(Exception):
    """An error answer of the server: code (BAD_INPUT, BUSY, ...), HTTP status, message; status None and
    code UNREACHABLE when no server answered."""

    def __init__(self, status, code, message):
        super().__init__(f"{code} ({status}): {message}" if status is not None else f"{code}: {message}")
        self.status = status
        self.code = code


def _image_json(image):
    if isinstance(image, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(image)).decode("ascii")
    if isinstance(image, dict) and "raw" in image:
        return {
            "raw": base64.b64encode(bytes(image["raw"])).decode("ascii"),
            "width": int(image["width"]),
            "height": int(image["height"]),
            "channels": int(image.get("channels", 3)),
        }
    raise TypeError("expected encoded image bytes or {'raw': bytes, 'width': w, 'height': h, 'channels': 3|4}")


def score_items(items, url=DEFAULT_URL, token=None, timeout=120.0, retries=5):
    """POST /v1/score with items [{"prompt", "image", "group"?}]; returns the response's results list.

    Retries on 429 (BUSY) after the server's Retry-After, at most `retries` times.
    """
    token = token or os.environ.get("PICKRANK_TOKEN")
    body = json.dumps({"items": [{**it, "image": _image_json(it["image"])} for it in items]}).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    for attempt in range(retries + 1):
        request = urllib.request.Request(url.rstrip("/") + "/v1/score", data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.load(response)["results"]
        except urllib.error.HTTPError as e:
            try:
                err = json.load(e).get("error", {})
            except ValueError:
                err = {}
            if e.code == 429 and attempt < retries:
                time.sleep(float(e.headers.get("Retry-After", "1")))
                continue
            raise PickrankError(e.code, err.get("code", "HTTP_ERROR"), err.get("message", str(e))) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise PickrankError(
                None,
                "UNREACHABLE",
                f"no answer from pickrank serve at {url} ({reason}); start it with `pickrank serve` (or set PICKRANK_URL)",
            ) from None
    raise AssertionError("unreachable")


def pickscore_rewards(prompts, images, group_size=None, **kwargs):
    """One PickScore reward per (prompt, image), in order; None for an item that failed.

    group_size: consecutive items of this many form a group (same prompt); results then also hold prob.
    Returns the rewards; pass return_results=True to get the full result dicts instead.
    """
    return_results = kwargs.pop("return_results", False)
    if len(prompts) != len(images):
        raise ValueError(f"expected as many prompts as images but received {len(prompts)} and {len(images)}")
    items = []
    for i, (prompt, image) in enumerate(zip(prompts, images)):
        item = {"prompt": prompt, "image": image}
        if group_size:
            item["group"] = i // group_size
        items.append(item)
    results = score_items(items, **kwargs)
    if return_results:
        return results
    return [r.get("score") for r in results]


def main(argv=None):
    parser = argparse.ArgumentParser(description="PickScore rewards of image files for one prompt, from pickrank serve")
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--group", action="store_true", help="one group: prob = softmax over these images")
    parser.add_argument("images", nargs="+")
    args = parser.parse_args(argv)
    blobs = []
    for path in args.images:
        with open(path, "rb") as f:
            blobs.append(f.read())
    try:
        results = pickscore_rewards(
            [args.prompt] * len(blobs), blobs, group_size=len(blobs) if args.group else None, url=args.url, return_results=True
        )
    except PickrankError as e:
        sys.stderr.write(f"reward_server: {e}\n")
        return 1
    json.dump({"prompt": args.prompt, "results": [{"file": p, **r} for p, r in zip(args.images, results)]}, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if all("score" in r for r in results) else 3


if __name__ == "__main__":
    sys.exit(main())
