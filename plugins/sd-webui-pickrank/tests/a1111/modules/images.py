"""Mirrors modules/images.py save_image() for PNG and image_grid() (v1.10.1)."""
import math
import os

from PIL import Image, PngImagePlugin

from modules.shared import opts

saved = []  # (path, seed, prompt, info) of every save, in order


def image_grid(imgs, batch_size=1, rows=None):
    if rows is None:
        if opts.n_rows > 0:
            rows = opts.n_rows
        elif opts.n_rows == 0:
            rows = batch_size
        elif opts.grid_prevent_empty_spots:
            rows = math.floor(math.sqrt(len(imgs)))
            while len(imgs) % rows != 0:
                rows -= 1
        else:
            rows = math.sqrt(len(imgs))
            rows = round(rows)
    if rows > len(imgs):
        rows = len(imgs)

    cols = math.ceil(len(imgs) / rows)

    w, h = imgs[0].size
    grid = Image.new('RGB', size=(cols * w, rows * h), color='black')

    for i, img in enumerate(imgs):
        grid.paste(img, box=(i % cols * w, i // cols * h))

    return grid


def save_image(image, path, basename, seed=None, prompt=None, extension='png', info=None, short_filename=False, no_prompt=False, grid=False, pnginfo_section_name='parameters', p=None, existing_info=None, forced_filename=None, suffix="", save_to_dirs=None):
    # The default file name pattern "[seed]" with the folder's counter: 00000-1234.png (grids: grid-0000.png).
    os.makedirs(path, exist_ok=True)
    count = len([f for f in os.listdir(path) if f.endswith(".png")])
    name = f"grid-{count:04}" if grid else f"{count:05}-{seed}{suffix}"
    fullfn = os.path.join(path, f"{name}.{extension}")
    pnginfo = PngImagePlugin.PngInfo()
    if info is not None:
        pnginfo.add_text(pnginfo_section_name, info)
    image.save(fullfn, format="PNG", pnginfo=pnginfo)
    saved.append((fullfn, seed, prompt, info))
    return fullfn, None
