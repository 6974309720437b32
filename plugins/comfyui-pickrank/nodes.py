"""PickScoreRank and PickScoreSelect: rank an IMAGE batch with pickrank serve, carry LATENT and MASK along.

ComfyUI's rules these nodes follow (nodes.py, execution.py, server.py):
- Inputs are cached outputs shared with other nodes, possibly non-contiguous views (a VAE decode's
  movedim, a crop) or on the GPU, received under torch.inference_mode(): they are only read (.cpu()
  copies, index_select makes new tensors; dicts are copied, never updated).
- Unconnected optional inputs are left out of the call: every optional parameter has a default.
- No INPUT_IS_LIST: an upstream *list* of batches calls a node once per batch, and each batch is ranked on
  its own (ComfyUI then concatenates the list outputs and the `ui` values of the calls).
- `ui` values are lists of strict JSON (no NaN); definitions are plain JSON (checked by the tests).
"""
import json
import logging
import math

import torch

from . import client
from .pixels import batch_to_raw

CATEGORY = "image/PickScore"
MIN_SCORE_OFF = -100.0
"""The min_score that turns the threshold off: PickScore is 100 * cos, never below -100."""

log = logging.getLogger("comfyui-pickrank")

_IMAGES = ("IMAGE", {"tooltip": "The batch to score, [B, H, W, C]. Pixels are scored as SaveImage writes them."})
_PROMPT = (
    "STRING",
    {
        "multiline": True,
        "dynamicPrompts": False,
        "default": "",
        "tooltip": "The text the images were generated for. Weights, LoRA and embedding tags are removed before scoring, "
        "as pickrank rank does, unless score_raw_prompt is on.",
    },
)
_RAW = (
    "BOOLEAN",
    {
        "default": False,
        "tooltip": "Score the prompt exactly as written, syntax included (pickrank rank --score-raw-prompt).",
    },
)
_LATENT = ("LATENT", {"tooltip": "Optional: the batch's latents (same batch size), reordered like the images."})
_MASK = ("MASK", {"tooltip": "Optional: the batch's masks (same batch size, or one mask for all), reordered like the images."})


def _take_latent(latent, order, batch):
    """A copy of LATENT `latent` with its samples (and a per-image noise_mask) in `order`; batch_index
    follows, as LatentFromBatch keeps it, so a later KSampler gives each image the noise of its position
    in the original batch. Raises ValueError when the batch sizes differ."""
    if latent is None:
        return None
    samples = latent["samples"]
    if samples.shape[0] != batch:
        raise ValueError(
            f"Expected a LATENT with one latent per image ({batch}) but received {samples.shape[0]}; "
            "connect the latents the images were decoded from"
        )
    out = dict(latent)
    out["samples"] = samples.index_select(0, torch.tensor(order, dtype=torch.long, device=samples.device))
    masks = latent.get("noise_mask")
    if masks is not None and masks.shape[0] != 1:
        if masks.shape[0] < batch:
            masks = masks.repeat(math.ceil(batch / masks.shape[0]), *([1] * (masks.dim() - 1)))[:batch]
        out["noise_mask"] = masks.index_select(0, torch.tensor(order, dtype=torch.long, device=masks.device))
    previous = latent.get("batch_index")
    out["batch_index"] = [previous[i] for i in order] if previous is not None else list(order)
    return out


def _take_mask(mask, order, batch):
    """MASK `mask` [B, H, W] in `order`; one mask for all ([H, W] or [1, H, W]) is returned as it is.
    Raises ValueError for another batch size."""
    if mask is None or mask.dim() == 2 or mask.shape[0] == 1:
        return mask
    if mask.shape[0] != batch:
        raise ValueError(f"Expected a MASK with one mask per image ({batch}) or one for all but received {mask.shape[0]}")
    return mask.index_select(0, torch.tensor(order, dtype=torch.long, device=mask.device))


def _score(images, prompt, raw, latent, mask):
    """Checks the inputs (the latent and mask batch sizes before any request), then ranks the images.
    The server removes the prompt's syntax unless `raw` (its cleanPrompt: the code `pickrank rank`
    runs). Returns (ranked, notes for the node, the text scored)."""
    if not isinstance(prompt, str) or prompt.strip() == "":
        raise ValueError("Expected a prompt (the text the images were generated for) but received an empty one")
    pixels, width, height, channels = batch_to_raw(images)
    identity = list(range(images.shape[0]))
    _take_latent(latent, identity, len(identity))
    _take_mask(mask, identity, len(identity))
    answer = client.rank(prompt, pixels, width, height, channels, clean_prompt=not raw)
    text = answer["scored_prompt"]
    notes = ([] if text == prompt else [f"scored as: {text}"]) + answer["warnings"]
    return answer["results"], notes, text


def _summary(ranked, kept, notes):
    lines = [n for n in notes if n]
    chosen = {r["index"] for r in kept}
    for r in ranked:
        mark = "  kept" if r["index"] in chosen and len(kept) < len(ranked) else ""
        lines.append(f"{r['rank']}. image {r['index']}: score {r['score']:.3f}, prob {r['prob']:.4f}{mark}")
    return "\n".join(lines)


def _outputs(images, latent, mask, ranked, kept, notes, scored):
    """The node's {"ui", "result"}: images/latent/mask in the order of `kept`, their scores and indices."""
    order = [r["index"] for r in kept]
    batch = images.shape[0]
    out_images = images.index_select(0, torch.tensor(order, dtype=torch.long, device=images.device))
    ui = {
        "text": [_summary(ranked, kept, notes)],
        "scored_as": [scored],
        "pickscore": [
            {"index": r["index"], "score": r["score"], "prob": r["prob"], "rank": r["rank"], "kept": r["index"] in order}
            for r in ranked
        ],
    }
    json.dumps(ui, allow_nan=False)  # a NaN would break the browser's JSON.parse: fail here instead
    result = (
        out_images,
        [float(r["score"]) for r in kept],
        _take_latent(latent, order, batch),
        _take_mask(mask, order, batch),
        order,
    )
    return {"ui": ui, "result": result}


# Both nodes' outputs, paired by position (saved workflows link to them by index: append only).
_RETURN_TYPES = ("IMAGE", "FLOAT", "LATENT", "MASK", "INT")
_RETURN_NAMES = ("images", "scores", "latent", "mask", "indices")
_OUTPUT_IS_LIST = (False, True, False, False, True)


class PickScoreRank:
    """Sorts an IMAGE batch best first by PickScore (pickrank serve), with its LATENT and MASK."""

    DESCRIPTION = (
        "Scores every image of the batch for the prompt with PickScore (pickrank serve, at PICKRANK_URL or "
        "127.0.0.1:7865) and outputs the batch sorted best first, with the scores; the optional latent and mask "
        "come out in the same order."
    )
    CATEGORY = CATEGORY
    FUNCTION = "rank"
    RETURN_TYPES = _RETURN_TYPES
    RETURN_NAMES = _RETURN_NAMES
    OUTPUT_IS_LIST = _OUTPUT_IS_LIST
    OUTPUT_TOOLTIPS = (
        "The images, best first.",
        "PickScore of each output image, in the same order.",
        "The latent input in the same order (none when not connected).",
        "The mask input in the same order (none when not connected).",
        "Position of each output image in the input batch (0-based).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"images": _IMAGES, "prompt": _PROMPT},
            "optional": {"latent": _LATENT, "mask": _MASK, "score_raw_prompt": _RAW},
        }

    def rank(self, images, prompt, latent=None, mask=None, score_raw_prompt=False):
        ranked, notes, scored = _score(images, prompt, score_raw_prompt, latent, mask)
        return _outputs(images, latent, mask, ranked, ranked, notes, scored)


class PickScoreSelect:
    """Keeps the k best images of a batch by PickScore (pickrank serve), best first, with their LATENT and MASK."""

    DESCRIPTION = (
        "Scores every image of the batch for the prompt with PickScore (pickrank serve, at PICKRANK_URL or "
        "127.0.0.1:7865) and keeps the k best, best first, that reach min_score; when none does, the best one is "
        "kept and the node says so. The optional latent and mask follow the images (select, then refine the "
        "winners' latents)."
    )
    CATEGORY = CATEGORY
    FUNCTION = "select"
    RETURN_TYPES = _RETURN_TYPES
    RETURN_NAMES = _RETURN_NAMES
    OUTPUT_IS_LIST = _OUTPUT_IS_LIST
    OUTPUT_TOOLTIPS = (
        "The k best images (fewer when min_score rejects some; never none), best first.",
        "PickScore of each output image, in the same order.",
        "The latents of the kept images, in the same order (none when not connected).",
        "The masks of the kept images, in the same order (none when not connected).",
        "Position of each kept image in the input batch (0-based).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": _IMAGES,
                "prompt": _PROMPT,
                "k": ("INT", {"default": 1, "min": 1, "max": 4096, "tooltip": "How many of the best images to keep."}),
            },
            "optional": {
                "latent": _LATENT,
                "mask": _MASK,
                "min_score": (
                    "FLOAT",
                    {
                        "default": MIN_SCORE_OFF,
                        "min": MIN_SCORE_OFF,
                        "max": 100.0,
                        "step": 0.1,
                        "tooltip": "Drop images scoring below this (-100: off). If none reaches it, the best one is kept.",
                    },
                ),
                "score_raw_prompt": _RAW,
            },
        }

    def select(self, images, prompt, k, latent=None, mask=None, min_score=MIN_SCORE_OFF, score_raw_prompt=False):
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"Expected k, the number of images to keep, to be an integer >= 1 but received {k!r}")
        ranked, prompt_notes, scored = _score(images, prompt, score_raw_prompt, latent, mask)
        threshold = min_score is not None and min_score > MIN_SCORE_OFF
        kept = [r for r in ranked[:k] if not threshold or r["score"] >= min_score]
        note = ""
        if not kept:
            best = ranked[0]
            kept = [best]
            note = (
                f"No image reached min_score {min_score:.3f}; kept the best one "
                f"(image {best['index']}, score {best['score']:.3f})."
            )
            log.warning("PickScoreSelect: %s", note)
        return _outputs(images, latent, mask, ranked, kept, [note, *prompt_notes], scored)
