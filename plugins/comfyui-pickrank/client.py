"""A small client of `pickrank serve` (POST /v1/rank), Python standard library only.

Pixels travel as raw 8-bit RGB (or RGBA) file parts of one multipart/form-data request, with the
width, height and channels as text fields: no PNG encoding and no base64. A batch too large for one
request is sent in several (each at most MAX_REQUEST_BYTES of pixels and MAX_REQUEST_IMAGES images);
scores do not depend on the request an image travels in, and the softmax over all of them is then
taken here, as the server takes it over one request (max-subtracted, in float64).
"""
import ipaddress
import json
import math
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

DEFAULT_URL = "http://127.0.0.1:7865"
"""`pickrank serve`'s own default address (--host 127.0.0.1 --port 7865)."""

MAX_REQUEST_BYTES = 32 * 1024 * 1024
"""Pixel bytes per request: half the server's default --max-body-bytes (64 MiB)."""

MAX_REQUEST_IMAGES = 64
"""Images per request: a quarter of the server's default --max-images (256)."""

TIMEOUT_S = 300.0
"""How long one request may take, in seconds (the server's own default request timeout is 60 s)."""

BUSY_RETRIES = 5
"""How many times a 429 BUSY answer is retried, after the server's Retry-After."""

START_HINT = (
    "Start it in a terminal with `pickrank serve` (or `pnpm -s pickrank serve --model <dir>` in a clone of "
    "pickrank; it listens on 127.0.0.1:7865), or set PICKRANK_URL to the address of a running server "
    "(PICKRANK_TOKEN when it requires a token), then queue the prompt again."
)


class PickrankServerError(RuntimeError):
    """pickrank serve could not score the images: `code` is the server's error code (BAD_IMAGE, BUSY,
    UNAUTHORIZED, ...) or UNREACHABLE when no server answered; `status` the HTTP status (None when no
    answer came)."""

    def __init__(self, message, code, status=None):
        super().__init__(message)
        self.code = code
        self.status = status


def server_url():
    """The server's base URL: env PICKRANK_URL, else DEFAULT_URL (trailing slashes removed)."""
    return (os.environ.get("PICKRANK_URL") or DEFAULT_URL).strip().rstrip("/")


def is_loopback(host):
    """Whether `host` (a name or an address, IPv6 with or without brackets) is this machine's loopback."""
    h = (host or "").strip("[]").lower()
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _opener(url):
    # urllib honours http_proxy/https_proxy (and, on Windows and macOS, the system's proxy settings) for
    # every host: a corporate proxy would then receive requests meant for 127.0.0.1, and answer 502 or
    # hang. Loopback always goes direct; other hosts keep the user's proxy settings.
    host = urllib.parse.urlsplit(url).hostname
    if is_loopback(host):
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def _multipart(prompt, images, width, height, channels, clean_prompt):
    boundary = "pickrank-" + uuid.uuid4().hex
    chunks = []

    def field(name, value):
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode("ascii")
            + value.encode("utf-8")
            + b"\r\n"
        )

    field("prompt", prompt)
    field("cleanPrompt", "true" if clean_prompt else "false")
    field("width", str(width))
    field("height", str(height))
    field("channels", str(channels))
    for i, pixels in enumerate(images):
        chunks.append(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="{i}.rgb"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode("ascii")
        )
        chunks.append(pixels)
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def _error_of(e, url):
    try:
        err = json.loads(e.read().decode("utf-8")).get("error", {})
    except (ValueError, AttributeError, OSError):
        err = {}
    code = err.get("code") or f"HTTP_{e.code}"
    message = err.get("message") or str(e.reason)
    hint = ""
    if code == "UNAUTHORIZED":
        hint = " Set PICKRANK_TOKEN to the server's token (the first line of its --token-file) and queue the prompt again."
    return PickrankServerError(f"pickrank serve at {url} refused the images: {message} [{code}].{hint}", code, e.code)


def _unreachable(url, reason):
    return PickrankServerError(f"pickrank serve is not running at {url} ({reason}). {START_HINT}", "UNREACHABLE")


def _timed_out(url):
    return PickrankServerError(
        f"pickrank serve at {url} did not answer within {TIMEOUT_S:g} s; it may be overloaded or stuck. "
        "Check its terminal, restart it if needed, then queue the prompt again.",
        "TIMEOUT",
    )


def _post(url, body, content_type, token):
    headers = {"Content-Type": content_type, "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    opener = _opener(url)
    for attempt in range(BUSY_RETRIES + 1):
        request = urllib.request.Request(url + "/v1/rank", data=body, headers=headers, method="POST")
        try:
            with opener.open(request, timeout=TIMEOUT_S) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            if e.code == 429 and attempt < BUSY_RETRIES:
                e.read()
                time.sleep(min(30.0, float(e.headers.get("Retry-After") or "1")))
                continue
            raise _error_of(e, url) from None
        except urllib.error.URLError as e:
            if isinstance(e.reason, socket.timeout):
                raise _timed_out(url) from None
            raise _unreachable(url, getattr(e.reason, "strerror", None) or str(e.reason)) from None
        except socket.timeout:
            raise _timed_out(url) from None
        except ConnectionError as e:
            raise _unreachable(url, str(e) or type(e).__name__) from None
    raise AssertionError("unreachable")


def _chunks(n, bytes_per_image):
    per = max(1, min(MAX_REQUEST_IMAGES, MAX_REQUEST_BYTES // max(1, bytes_per_image)))
    return [range(s, min(n, s + per)) for s in range(0, n, per)]


def softmax(scores):
    """Probabilities of `scores` as the server computes them: exp(x - max) / sum, in float64."""
    if not scores:
        return []
    top = max(scores)
    e = [math.exp(x - top) for x in scores]
    total = sum(e)
    return [x / total for x in e]


def rank(prompt, images, width, height, channels=3, url=None, token=None, clean_prompt=False):
    """Ranks raw 8-bit images for one prompt with pickrank serve's POST /v1/rank.

    images: a list of `bytes`, each width*height*channels bytes, row-major, interleaved RGB (3) or RGBA
    (4; the alpha is dropped, as PickScore does). url: default server_url(); token: default env
    PICKRANK_TOKEN. clean_prompt: the server scores the prompt without its A1111 / ComfyUI syntax, as
    `pickrank rank` does by default (the same code: the server's cleanPrompt). Returns
    {"results", "scored_prompt", "warnings"}: results has one dict per image, best first (ties: the
    earlier image first): {"index", "score", "prob", "rank"}; `score` is PickScore (exp(logit_scale) *
    cos), `prob` the softmax over all the images given, `rank` 1 = best; scored_prompt is the text the
    server scored, warnings its warnings (e.g. longer than CLIP's 75 tokens). Raises PickrankServerError
    (code UNREACHABLE when no server answers, else the server's error code).
    """
    url = (url or server_url()).rstrip("/")
    parts_of_url = urllib.parse.urlsplit(url)
    if parts_of_url.scheme not in ("http", "https") or not parts_of_url.hostname:
        raise PickrankServerError(
            f"Expected PICKRANK_URL to be the server's address, such as {DEFAULT_URL}, but received {url!r}", "BAD_INPUT"
        )
    token = token if token is not None else (os.environ.get("PICKRANK_TOKEN") or "").strip() or None
    parts = _chunks(len(images), width * height * channels)
    scored = []
    scored_prompt, warnings = prompt, []
    for part in parts:
        body, content_type = _multipart(prompt, [images[i] for i in part], width, height, channels, clean_prompt)
        answer = _post(url, body, content_type, token)
        scored_prompt = answer.get("scoredPrompt", prompt)
        warnings = [w for w in answer.get("warnings", []) if isinstance(w, str)]
        results = answer.get("results")
        if not isinstance(results, list) or len(results) != len(part):
            raise PickrankServerError(
                f"pickrank serve at {url} answered {len(results or [])} results for {len(part)} images", "INTERNAL", 200
            )
        for r in results:
            scored.append({"index": part[r["index"]], "score": r["score"], "prob": r["prob"], "rank": r["rank"]})
    if len(parts) > 1:
        probs = softmax([s["score"] for s in sorted(scored, key=lambda s: s["index"])])
        for s in scored:
            s["prob"] = probs[s["index"]]
    scored.sort(key=lambda s: (-s["score"], s["index"]))
    for i, s in enumerate(scored):
        s["rank"] = i + 1
    return {"results": scored, "scored_prompt": scored_prompt, "warnings": warnings}
