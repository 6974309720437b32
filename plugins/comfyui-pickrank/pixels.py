"""ComfyUI IMAGE tensors -> the 8-bit pixels that ComfyUI's SaveImage writes.

SaveImage (nodes.py) converts each image of the batch with

    i = 255. * image.cpu().numpy()
    img = Image.fromarray(np.clip(i, 0, 255).astype(np.uint8))

that is: multiply in the tensor's own float type (float32 for IMAGE), clip to [0, 255], truncate
towards zero. to_uint8 runs that same expression, image by image, so the bytes sent to pickrank serve
are the pixels of SaveImage's PNG and the scores equal `pickrank rank` on that PNG.
"""
import numpy as np
import torch


def to_uint8(image):
    """One IMAGE item [H, W, C] (any device, any strides) -> a C-contiguous uint8 numpy array [H, W, C],
    converted exactly as SaveImage converts it. bfloat16, which numpy cannot hold, goes through float32
    first (SaveImage would fail on it)."""
    if image.dtype == torch.bfloat16:
        image = image.float()
    i = 255.0 * image.cpu().numpy()
    return np.ascontiguousarray(np.clip(i, 0, 255).astype(np.uint8))


def batch_to_raw(images):
    """An IMAGE batch [B, H, W, C] (C 3 = RGB or 4 = RGBA) -> (list of B `bytes`, width, height, channels),
    each item H*W*C bytes, row-major, interleaved: the raw pixels pickrank serve takes.

    Raises ValueError when the tensor is not [B, H, W, 3|4] or the batch is empty. Never modifies `images`.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"Expected images as an IMAGE batch [B, H, W, C] but received {shape}")
    b, h, w, c = images.shape
    if c not in (3, 4):
        raise ValueError(f"Expected IMAGE channels 3 (RGB) or 4 (RGBA) but received {c} (shape {tuple(images.shape)})")
    if b == 0 or h == 0 or w == 0:
        raise ValueError(f"Expected at least one image of at least 1x1 pixels but received a batch of shape {tuple(images.shape)}")
    return [to_uint8(images[i]).tobytes() for i in range(b)], w, h, c
