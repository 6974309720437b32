#!/usr/bin/env python3
"""Writes the decoding fixtures of packages/core/test/preprocess-decode.test.ts and PIL's RGB of each.

The PickScore reference decodes with PIL: `Image.open(f)`, EXIF orientation applied (transformers'
`load_image`), then `.convert("RGB")`. This script writes one small image per format and mode that
sharp (libvips) decodes, runs that reference on it, and stores the result in `pil-rgb.json`
(zlib-compressed interleaved RGB, base64), so the test needs no Python at test time and pins the
reference version that made the values. Run it from this folder:

    python3 -m venv /tmp/pil && /tmp/pil/bin/pip install pillow numpy tifffile
    /tmp/pil/bin/python gen-decode-fixtures.py

YCCK JPEG needs ImageMagick's `convert` (neither PIL nor libvips writes YCCK); without it that
fixture is kept as it is. Each row's `rule` says how the expected pixels were made:
  convert         ImageOps.exif_transpose(Image.open(f)).convert("RGB") — the reference
  gray16-msb      16-bit gray: the high byte of each sample. PIL opens these as mode I;16, and
                  convert("RGB") clips every value above 255 to 255 (a near-white image): pickrank
                  scales instead, as PIL itself does for 16-bit RGB, RGBA and LA (their high byte).
"""
import base64
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import zlib

import numpy as np
import PIL
import tifffile
from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
W, H = 61, 45  # odd sizes: resampling and chroma subsampling edges show


def rgb_pattern(w=W, h=H):
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 // (w - 1)).astype(np.uint8)
    g = (y * 255 // (h - 1)).astype(np.uint8)
    b = np.where(((x >> 3) + (y >> 3)) % 2 == 0, 220, 35).astype(np.uint8)
    img = np.stack([r, g, b], axis=-1)
    # Saturated patches (where a wrong colour conversion shows most).
    img[2:12, 2:14] = (255, 0, 0)
    img[2:12, 16:28] = (0, 255, 255)
    img[14:24, 2:14] = (0, 0, 0)
    img[14:24, 16:28] = (255, 255, 255)
    return img


def gray_pattern(w=W, h=H):
    y, x = np.mgrid[0:h, 0:w]
    v = (x * 3 + y * 2) % 256
    v = np.where(((x >> 2) + (y >> 2)) % 2 == 0, v, 255 - v)
    return v.astype(np.uint8)


def alpha_pattern(w=W, h=H):
    y, x = np.mgrid[0:h, 0:w]
    a = ((x * 255) // (w - 1)).astype(np.uint8)
    a[:, :8] = 0  # fully transparent pixels that still carry colour
    a[:, -8:] = 255
    return a


def u16(v8, salt):
    """16-bit samples whose low byte is not a copy of the high byte (so truncation vs rounding shows)."""
    return (v8.astype(np.uint16) << 8) | ((v8.astype(np.uint16) * 7 + salt) & 0xFF)


# ---------------------------------------------------------------- PNG, written by hand (every mode)
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def pack_rows(samples, bit_depth):
    """samples: h × (w·channels) array of sample values → filtered scanlines (filter 0)."""
    out = bytearray()
    for row in samples:
        out.append(0)
        if bit_depth == 16:
            out += row.astype(">u2").tobytes()
        elif bit_depth == 8:
            out += row.astype(np.uint8).tobytes()
        else:
            out += np.packbits(np.unpackbits(row.astype(np.uint8)[:, None], axis=1)[:, 8 - bit_depth:].reshape(-1)).tobytes()
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(name, samples, color_type, bit_depth, plte=None, trns=None, interlace=False, extra=()):
    """samples: h × w × channels (or h × w) array."""
    h, w = samples.shape[:2]
    s = samples.reshape(h, w, -1)
    if interlace:
        raw = b""
        for x0, y0, dx, dy in ADAM7:
            sub = s[y0::dy, x0::dx]
            if sub.size:
                raw += pack_rows(sub.reshape(sub.shape[0], -1), bit_depth)
    else:
        raw = pack_rows(s.reshape(h, -1), bit_depth)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, int(interlace)))
    for c in extra:
        png += c
    if plte is not None:
        png += chunk(b"PLTE", bytes(np.asarray(plte, np.uint8).reshape(-1)))
    if trns is not None:
        png += chunk(b"tRNS", trns)
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    return save(name, png)


def palette(n):
    """n colourful entries (entry 0 is not black, so a transparent index's colour shows)."""
    i = np.arange(n)
    return np.stack([(i * 97 + 40) % 256, (i * 57 + 200) % 256, (i * 23 + 120) % 256], axis=-1).astype(np.uint8)


def indices(bits):
    y, x = np.mgrid[0:H, 0:W]
    return ((x // 3 + y // 2 * 5) % (1 << bits)).astype(np.uint8)


# ---------------------------------------------------------------- GIF, written by hand (offsets, local palettes)
def lzw_literal(idx, min_code):
    """LZW stream that sends every index as a literal, with a clear code before the table grows."""
    clear, end, width = 1 << min_code, (1 << min_code) + 1, min_code + 1
    codes, run = [clear], 0
    for v in idx:
        if run == (1 << width) - (1 << min_code) - 2:
            codes.append(clear)
            run = 0
        codes.append(int(v))
        run += 1
    codes.append(end)
    bits, nbits, out = 0, 0, bytearray()
    for c in codes:
        bits |= c << nbits
        nbits += width
        while nbits >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            nbits -= 8
    if nbits:
        out.append(bits & 0xFF)
    blocks = bytearray([min_code])
    for i in range(0, len(out), 255):
        blocks += bytes([len(out[i:i + 255])]) + out[i:i + 255]
    return bytes(blocks + b"\x00")


def write_gif(name, screen, frame_box, idx, global_pal=None, local_pal=None, transparent=None, background=0):
    sw, sh = screen
    fx, fy, fw, fh = frame_box
    gif = b"GIF89a" + struct.pack("<HH", sw, sh)
    gif += bytes([(0x80 | 0x07) if global_pal is not None else 0, background, 0])
    if global_pal is not None:
        gif += bytes(np.asarray(global_pal, np.uint8).reshape(-1))
    if transparent is not None:
        gif += b"\x21\xf9\x04" + bytes([0x01]) + b"\x00\x00" + bytes([transparent]) + b"\x00"
    gif += b"\x2c" + struct.pack("<HHHH", fx, fy, fw, fh) + bytes([(0x80 | 0x07) if local_pal is not None else 0])
    if local_pal is not None:
        gif += bytes(np.asarray(local_pal, np.uint8).reshape(-1))
    gif += lzw_literal(idx.reshape(-1), 8) + b"\x3b"
    return save(name, gif)


# ---------------------------------------------------------------- the table
FIXTURES = []


def save(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
    return name


def pil_save(name, im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return save(name, b.getvalue())


def add(file, lossless, note, rule="convert", path=None):
    FIXTURES.append({"file": file, "lossless": lossless, "note": note, "rule": rule, "path": path or os.path.join(HERE, file)})


def make_all():
    rgb, gray, alpha = rgb_pattern(), gray_pattern(), alpha_pattern()
    rgba = np.dstack([rgb, alpha])
    # PNG: every colour type and bit depth the format has.
    for bits in (1, 2, 4, 8):
        add(write_png(f"png-gray{bits}.png", gray >> (8 - bits), 0, bits), True, f"gray, {bits}-bit")
    add(write_png("png-gray8-trns.png", gray, 0, 8, trns=struct.pack(">H", int(gray[0, 0]))), True, "gray + tRNS")
    add(write_png("png-gray16.png", u16(gray, 3), 0, 16), True, "16-bit gray (PIL: I;16, clipped)", rule="gray16-msb")
    add(write_png("png-rgb8.png", rgb, 2, 8), True, "RGB")
    add(write_png("png-rgb8-trns.png", rgb, 2, 8, trns=struct.pack(">HHH", 255, 0, 0)), True, "RGB + tRNS (red transparent)")
    add(write_png("png-rgb16.png", u16(rgb, 11), 2, 16), True, "16-bit RGB (PIL: high byte)")
    add(write_png("png-rgb8-adam7.png", rgb, 2, 8, interlace=True), True, "RGB, Adam7 interlaced")
    gama = chunk(b"gAMA", struct.pack(">I", 100000))  # gamma 1.0: must not be applied (PIL ignores it)
    add(write_png("png-rgb8-gama.png", rgb, 2, 8, extra=[gama]), True, "RGB with a gAMA chunk (ignored)")
    for bits in (1, 2, 4, 8):
        n = 1 << bits
        add(write_png(f"png-pal{bits}.png", indices(bits), 3, bits, plte=palette(n)), True, f"palette, {bits}-bit")
    trns = bytes([0, 128, 0, 255] * 64)
    add(write_png("png-pal8-trns.png", indices(8), 3, 8, plte=palette(256), trns=trns), True, "palette + tRNS (transparent entries keep their colour)")
    add(write_png("png-pal4-trns-adam7.png", indices(4), 3, 4, plte=palette(16), trns=bytes([0, 0, 90]), interlace=True), True, "4-bit palette + tRNS, interlaced")
    add(write_png("png-gray-alpha8.png", np.dstack([gray, alpha]), 4, 8), True, "gray + alpha (LA)")
    add(write_png("png-gray-alpha16.png", np.dstack([u16(gray, 5), u16(alpha, 9)]), 4, 16), True, "16-bit gray + alpha (PIL: LA, high byte)")
    add(write_png("png-rgba8.png", rgba, 6, 8), True, "RGBA (colour under alpha 0 kept)")
    add(write_png("png-rgba16.png", u16(rgba, 13), 6, 16), True, "16-bit RGBA (PIL: high byte)")

    # JPEG: PIL writes RGB (each chroma subsampling), gray, CMYK (Adobe, inverted), progressive.
    im = Image.fromarray(rgb)
    for sub, tag in ((2, "420"), (1, "422"), (0, "444")):
        add(pil_save(f"jpeg-rgb-{tag}.jpg", im, "JPEG", quality=92, subsampling=sub), False, f"RGB JPEG, 4:{tag[1]}:{tag[2]}")
    add(pil_save("jpeg-rgb-progressive.jpg", im, "JPEG", quality=92, progressive=True), False, "progressive RGB JPEG")
    add(pil_save("jpeg-gray.jpg", Image.fromarray(gray), "JPEG", quality=92), False, "gray JPEG")
    cmyk = Image.fromarray(np.dstack([rgb[..., 2], rgb[..., 0], rgb[..., 1], 255 - gray]), "CMYK")
    add(pil_save("jpeg-cmyk.jpg", cmyk, "JPEG", quality=95), False, "CMYK JPEG (Adobe marker, inverted)")
    if shutil.which("convert"):
        pil_save("cmyk-source.tif", cmyk, "TIFF")
        subprocess.run(["convert", os.path.join(HERE, "cmyk-source.tif"), "-quality", "95", "-define", "jpeg:colorspace=5",
                        os.path.join(HERE, "jpeg-ycck.jpg")], check=True)
        os.remove(os.path.join(HERE, "cmyk-source.tif"))
    if os.path.exists(os.path.join(HERE, "jpeg-ycck.jpg")):
        add("jpeg-ycck.jpg", False, "YCCK JPEG (Adobe transform 2)")
    exif = Image.Exif()
    exif[0x0112] = 6
    add(pil_save("jpeg-exif-rotate90.jpg", im, "JPEG", quality=92, exif=exif.tobytes()), False, "EXIF orientation 6 (applied, as load_image does)")

    # GIF: PIL's own (global palette, transparency) and hand-written ones (local palette, offset frame).
    pal_im = Image.fromarray(indices(8), "P")
    pal_im.putpalette(bytes(palette(256).reshape(-1)))
    add(pil_save("gif-plain.gif", pal_im, "GIF"), True, "GIF, global palette")
    add(pil_save("gif-transparent.gif", pal_im, "GIF", transparency=3), True, "GIF whose transparent index has a colour")
    idx = indices(8)
    add(write_gif("gif-local-palette-transparent.gif", (W, H), (0, 0, W, H), idx, local_pal=palette(256)[::-1], transparent=0),
        True, "GIF, local palette only, transparent index 0")
    add(write_gif("gif-offset-frame.gif", (W, H), (7, 5, W - 20, H - 14), idx[: H - 14, : W - 20], global_pal=palette(256),
                  transparent=5, background=9), True, "GIF, first frame smaller than the screen, transparent index 5")
    add(write_gif("gif-offset-frame-opaque.gif", (W, H), (3, 9, W - 10, H - 12), idx[: H - 12, : W - 10], global_pal=palette(256),
                  background=9), True, "GIF, first frame smaller than the screen, no transparency")

    # WebP (libwebp on both sides).
    add(pil_save("webp-lossless-rgb.webp", im, "WEBP", lossless=True), True, "lossless WebP, RGB")
    add(pil_save("webp-lossless-rgba.webp", Image.fromarray(rgba, "RGBA"), "WEBP", lossless=True, exact=True), True, "lossless WebP, RGBA")
    add(pil_save("webp-lossy-rgb.webp", im, "WEBP", quality=90), False, "lossy WebP, RGB")
    add(pil_save("webp-lossy-rgba.webp", Image.fromarray(rgba, "RGBA"), "WEBP", quality=90), False, "lossy WebP, RGBA")

    # TIFF: PIL's modes, and 16-bit from tifffile.
    add(pil_save("tiff-rgb.tif", im, "TIFF"), True, "RGB TIFF")
    add(pil_save("tiff-rgb-lzw.tif", im, "TIFF", compression="tiff_lzw"), True, "RGB TIFF, LZW")
    add(pil_save("tiff-rgba.tif", Image.fromarray(rgba, "RGBA"), "TIFF"), True, "RGBA TIFF (unassociated alpha)")
    add(pil_save("tiff-gray.tif", Image.fromarray(gray), "TIFF"), True, "gray TIFF")
    add(pil_save("tiff-bilevel.tif", Image.fromarray(gray).convert("1"), "TIFF"), True, "1-bit TIFF")
    add(pil_save("tiff-palette.tif", pal_im, "TIFF"), True, "palette TIFF")
    add(pil_save("tiff-cmyk.tif", cmyk, "TIFF"), True, "CMYK TIFF")
    b = io.BytesIO()
    tifffile.imwrite(b, u16(rgb, 17), photometric="rgb")
    add(save("tiff-rgb16.tif", b.getvalue()), True, "16-bit RGB TIFF (PIL: high byte)")
    b = io.BytesIO()
    tifffile.imwrite(b, np.dstack([u16(rgb[..., 2], 21), u16(rgb[..., 0], 23), u16(rgb[..., 1], 25), u16(255 - gray, 27)]), photometric="separated")
    add(save("tiff-cmyk16.tif", b.getvalue()), True, "16-bit CMYK TIFF (PIL: CMYK, high byte)")
    b = io.BytesIO()
    premultiplied = (rgb.astype(np.uint16) * alpha[..., None] // 255).astype(np.uint8)
    tifffile.imwrite(b, np.dstack([premultiplied, alpha]), photometric="rgb", extrasamples=["assocalpha"])
    # Not exact: libvips and PIL round the un-premultiplication differently (±1 level on 5 of 2745 pixels).
    add(save("tiff-rgba-associated.tif", b.getvalue()), False, "RGBA TIFF, associated alpha (un-premultiplied: ±1 level)")
    b = io.BytesIO()
    tifffile.imwrite(b, u16(gray, 19), photometric="minisblack")
    add(save("tiff-gray16.tif", b.getvalue()), True, "16-bit gray TIFF (PIL: I;16, clipped)", rule="gray16-msb")

    # AVIF, where this PIL has it. libavif (PIL) and libheif (libvips) upsample 4:2:0 chroma differently:
    # on photos that stays inside the bar, on this synthetic pattern's hard colour edges it does not
    # (README, "Faithful to PickScore"), so the 4:2:0 row is a photo and the synthetic rows are 4:4:4.
    from PIL import features
    if features.check("avif"):
        add(pil_save("avif-rgb-444.avif", im, "AVIF", quality=90, subsampling="4:4:4"), False, "AVIF 4:4:4, RGB")
        add(pil_save("avif-rgba-444.avif", Image.fromarray(rgba, "RGBA"), "AVIF", quality=90, subsampling="4:4:4"), False, "AVIF 4:4:4, RGBA")
        photo = os.path.normpath(os.path.join(HERE, "../../../../../../shared/fixtures/pickscore-reference/images/photo_768.jpg"))
        if os.path.exists(photo):
            # At least 224 px on the short side, as generated images are: upscaled, the difference grows
            # (a 192×144 crop misses the bar: p99 0.13).
            crop = Image.open(photo).convert("RGB").crop((0, 0, 300, 224))
            add(pil_save("avif-photo-420.avif", crop, "AVIF", quality=70), False, "AVIF 4:2:0, a 300×224 photo")
    for stale in ("avif-rgb.avif", "avif-rgba.avif"):
        if os.path.exists(os.path.join(HERE, stale)):
            os.remove(os.path.join(HERE, stale))

    # The failing input of the project's cases folder (not copied: the test reads it from ../shared).
    case = os.path.normpath(os.path.join(HERE, "../../../../../../shared/cases/cmyk_swatch.jpg"))
    if os.path.exists(case):
        add("../../../../../../shared/cases/cmyk_swatch.jpg", False, "CMYK JPEG, no profile (shared/cases)", path=case)


def reference(path, rule):
    im = Image.open(path)
    if rule == "gray16-msb":
        assert im.mode.startswith("I;16"), im.mode
        a = (np.asarray(im).astype(np.uint16) >> 8).astype(np.uint8)
        return im.mode, np.repeat(a[..., None], 3, axis=-1)
    mode = im.mode
    return mode, np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def main():
    make_all()
    rows = []
    for f in FIXTURES:
        mode, rgb = reference(f["path"], f["rule"])
        with open(f["path"], "rb") as fh:
            sha = hashlib.sha256(fh.read()).hexdigest()
        rows.append({
            "file": f["file"], "mode": mode, "note": f["note"], "rule": f["rule"], "lossless": f["lossless"],
            "width": int(rgb.shape[1]), "height": int(rgb.shape[0]), "sha256": sha,
            "rgb": base64.b64encode(zlib.compress(np.ascontiguousarray(rgb).tobytes(), 9)).decode(),
        })
    doc = {"reference": f"Pillow {PIL.__version__} (numpy {np.__version__}): ImageOps.exif_transpose(Image.open(f)).convert('RGB')",
           "rgb": "interleaved uint8 RGB, row-major, zlib-compressed, base64", "fixtures": rows}
    with open(os.path.join(HERE, "pil-rgb.json"), "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
    print(f"{len(rows)} fixtures, {sum(os.path.getsize(os.path.join(HERE, r['file'])) for r in rows if '/' not in r['file'])} bytes of images")


if __name__ == "__main__":
    main()
