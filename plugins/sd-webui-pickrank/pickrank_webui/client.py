"""A standard-library client of `pickrank serve`'s POST /v1/score, for the A1111 / Forge extension.

Images travel as raw 8-bit RGB file parts of one multipart/form-data request (no PNG encoding, no
base64: a 1024×1024 image is 3 MiB on the wire), each with its width and height, and each item names
its group so the server takes the softmax (prob, rank) within the images of one prompt. The server's
request and answer shapes are packages/server/src/schemas.ts (ScoreRequest, ScoreResponse).
"""
import ipaddress
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

DEFAULT_URL = "http://127.0.0.1:7865"
"""The address `pickrank serve` binds by default (packages/server/src/options.ts DEFAULTS)."""


class ServerError(Exception):
    """A failed call to the server.

    code: the server's error code (BAD_INPUT, PAYLOAD_TOO_LARGE, BUSY, UNAUTHORIZED, …), or UNREACHABLE
    when no answer came (connection refused, unknown host, timeout); status: the HTTP status or None;
    unreachable: True when the server did not answer at all.
    """

    def __init__(self, code, message, status=None):
        super().__init__(message)
        self.code = code
        self.status = status
        self.unreachable = code == "UNREACHABLE"


def server_url(value=None):
    """The server's base URL: `value` when given, else env PICKRANK_URL, else DEFAULT_URL; no trailing slash."""
    url = (value or "").strip() or os.environ.get("PICKRANK_URL", "").strip() or DEFAULT_URL
    if "://" not in url:
        url = "http://" + url
    return url.rstrip("/")


def _is_loopback(host):
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _opener(url):
    """urllib's opener; for a loopback server without proxies (a system HTTP proxy must not see 127.0.0.1)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if _is_loopback(host):
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def _multipart(fields, files):
    """multipart/form-data body: text fields [(name, str)], files [(name, filename, bytes)] as octet-stream."""
    boundary = "pickrank-" + uuid.uuid4().hex
    chunks = []
    for name, value in fields:
        chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode("utf-8"))
        chunks.append(value.encode("utf-8") + b"\r\n")
    for name, filename, data in files:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        chunks.append(head.encode("utf-8"))
        chunks.append(bytes(data))
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode("utf-8"))
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def _error_of(e):
    try:
        body = json.loads(e.read().decode("utf-8"))
        err = body.get("error", {}) if isinstance(body, dict) else {}
    except (ValueError, OSError):
        err = {}
    return ServerError(err.get("code", f"HTTP_{e.code}"), err.get("message", str(e)), e.code)


def score_raw(items, url=None, token=None, timeout=120.0, retries=3, clean_prompt=True):
    """POST /v1/score with raw RGB images; returns the answer's dict ({model, device, results, failed, timings}).

    items: [{"prompt": str, "group": int|str, "rgb": bytes (height×width×3, row-major), "width": int,
    "height": int}]. results come back in the same order, each {index, score, prob, rank, group} or
    {index, group, error}; with clean_prompt (the server's cleanPrompt) the server scores each prompt
    without its A1111 syntax, with the code `pickrank rank` runs, and each scored result carries the
    text it scored as scoredPrompt. token: a Bearer token (default env PICKRANK_TOKEN). A 429 (BUSY) is retried
    after the server's Retry-After (at most 10 s) `retries` times. Raises ServerError.
    """
    base = server_url(url)
    token = token or os.environ.get("PICKRANK_TOKEN") or None
    described = []
    files = []
    for i, it in enumerate(items):
        part = f"image{i}"
        files.append((part, f"{part}.rgb", it["rgb"]))
        image = {"part": part, "width": int(it["width"]), "height": int(it["height"]), "channels": 3}
        described.append({"prompt": it["prompt"], "image": image, "group": it["group"]})
    fields = [("items", json.dumps(described)), ("cleanPrompt", "true" if clean_prompt else "false")]
    body, content_type = _multipart(fields, files)
    headers = {"Content-Type": content_type, "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    opener = _opener(base)
    for attempt in range(retries + 1):
        request = urllib.request.Request(base + "/v1/score", data=body, headers=headers, method="POST")
        try:
            with opener.open(request, timeout=timeout) as response:
                text = response.read().decode("utf-8")
            try:
                return json.loads(text)
            except ValueError:
                raise ServerError("BAD_ANSWER", f"pickrank serve at {base} answered with something that is not JSON") from None
        except urllib.error.HTTPError as e:
            if e.code == 429 and attempt < retries:
                time.sleep(min(10.0, float(e.headers.get("Retry-After") or "1")))
                continue
            raise _error_of(e) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ServerError("UNREACHABLE", f"no answer from pickrank serve at {base} ({reason})") from None
    raise ServerError("BUSY", f"pickrank serve at {base} stayed busy after {retries} retries", 429)
