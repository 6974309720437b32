"""The A1111 / Forge side of the extension: what scripts/pickrank.py's hooks do with `p`.

Hooks (modules/scripts.py, v1.10.1), and why these:
- process(p): once per job, before any batch: the job's state is set on p.
- postprocess_batch_list(p, pp, batch_number): the only hook that sees a whole batch (pp.images, the
  decoded images as CHW float tensors in 0..1) before any of its images is converted, saved or given
  an infotext; a script may reorder or drop them there, and then owns p.prompts, p.negative_prompts,
  p.seeds, p.subseeds (its docstring says so). The batch is ranked here, on the pixels A1111 will save.
- postprocess(p, processed): after every batch and the grid; too late for saved files, used only for
  what API callers read (all_seeds and the others aligned with the images kept, scores as lists).

The per-image fields are callables in p.extra_generation_params: processing.create_infotext calls a
callable value with its locals (p, index, all_seeds, use_main_prompt, …) for every image's infotext,
the saved file's included, so each image gets its own numbers (a plain value would be the same for all).
"""
import sys

import numpy as np

from . import client, ranking

STATE_ATTR = "pickrank_state"
"""Attribute of p that holds the job's JobState (absent or None: the extension is off for the job)."""

FIELD_KEYS = ("PickScore", "PickScore prob", "PickScore rank", "PickScore model", "PickScore prompt")
"""Infotext keys, as the CLI writes them (packages/selector/src/output.ts pickScoreFields)."""

PER_BATCH = ("prompts", "negative_prompts", "seeds", "subseeds", "hr_prompts", "hr_negative_prompts")
"""p's per-batch lists (one entry per image of the batch), reordered and cut with the images."""

PER_JOB = ("all_prompts", "all_negative_prompts", "all_seeds", "all_subseeds", "all_hr_prompts", "all_hr_negative_prompts")
"""p's per-job lists: the batch's slice is reordered in place, never shortened while the job runs
(process_images_inner slices them by batch_number × batch_size for every batch)."""

PER_IMAGE_INPUTS = ("overlay_images", "color_corrections")
"""img2img's per-position lists that the save loop reads by position (p.overlay_images[i])."""


class Settings:
    """The script's arguments, in ui() order: enabled, keep top k (0: all), reorder, minimum score
    (0 or empty: off), server URL (empty: env PICKRANK_URL, else http://127.0.0.1:7865)."""

    def __init__(self, enabled=False, keep_top_k=0, reorder=True, min_score=None, url=""):
        self.enabled = enabled
        self.keep_top_k = keep_top_k
        self.reorder = reorder
        self.min_score = min_score
        self.url = url

    @classmethod
    def from_args(cls, args):
        """From script args as the UI or the API's alwayson_scripts give them (missing ones: defaults)."""
        a = list(args) + [None] * 5
        keep = _number(a[1])
        min_score = _number(a[3])
        return cls(
            enabled=_flag(a[0], False),
            keep_top_k=max(0, int(keep)) if keep is not None else 0,
            reorder=_flag(a[2], True),
            min_score=min_score if min_score else None,
            url=str(a[4] or "").strip(),
        )


def _flag(v, default):
    if v is None:
        return default
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "on")
    return bool(v)


def _number(v):
    if v is None or (isinstance(v, str) and v.strip() == ""):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


class Record:
    """One scored image: its score, prob, rank and N (images of its group), and its infotext fields."""

    def __init__(self, result, of, model, prompt, text):
        self.score = result["score"]
        self.prob = result["prob"]
        self.rank = result["rank"]
        self.of = of
        self.fields = {
            "PickScore": ranking.format_score(self.score),
            "PickScore prob": ranking.format_prob(self.prob),
            "PickScore rank": f"{self.rank}/{of}",
            "PickScore model": model,
            "PickScore prompt": text.replace("\n", " ") if text != prompt else None,
        }


class JobState:
    """What the extension knows about one job (one process_images call)."""

    def __init__(self, settings):
        self.settings = settings
        self.batches = {}  # batch number → Record or None per image, in output order
        self.slots = {}  # position in p.all_* → Record or None
        self.outputs = []  # (position in p.all_*, Record or None) per image output, in output order
        self.dropped = 0
        self.unreachable = None  # the message, once the server did not answer
        self.installed = False
        self.originals = {}  # PER_IMAGE_INPUTS as A1111 made them
        self.compact_seeds = None
        self.notes = []


def warn(p, message):
    """A warning in the console and under the gallery (Processed.comments, shown by the UI)."""
    print(f"PickScore: {message}", file=sys.stderr)
    comment = getattr(p, "comment", None)
    if callable(comment):
        comment(f"PickScore: {message}")


def start_job(p, args):
    """Script.process: a fresh JobState on p when the extension is enabled, else None."""
    settings = Settings.from_args(args)
    setattr(p, STATE_ATTR, JobState(settings) if settings.enabled else None)
    if settings.enabled and getattr(p, "restore_faces", False):
        warn(p, "face restoration runs after ranking: the scores are those of the images before it")


def a1111_uint8(x_sample):
    """A decoded image (CHW float tensor, 0..1) → HWC uint8, as processing.process_images_inner converts it
    before saving: `255. * np.moveaxis(x_sample.cpu().numpy(), 0, 2)` then `.astype(np.uint8)` (truncation)."""
    return (255.0 * np.moveaxis(x_sample.cpu().numpy(), 0, 2)).astype(np.uint8)


def saved_pixels(p, x_sample, i):
    """The RGB pixels (HWC uint8) A1111 saves for image i of the batch, as far as a batch hook can know them:
    its conversion, then img2img's colour correction and inpainting overlay (A1111's own functions, the way
    the save loop of process_images_inner calls them). Face restoration and other scripts' per-image hooks
    (postprocess_image…) run later and are not reproduced."""
    pixels = a1111_uint8(x_sample)
    corrections = getattr(p, "color_corrections", None)
    overlay = _overlay_for(p, i)
    if overlay is None and not (corrections is not None and i < len(corrections)):
        return pixels
    from modules import processing  # A1111's own module: always importable inside A1111
    from PIL import Image

    image = Image.fromarray(pixels)
    if corrections is not None and i < len(corrections):
        image = processing.apply_color_correction(corrections[i], image)
    image, _ = processing.apply_overlay(image, getattr(p, "paste_to", None), overlay)
    return np.asarray(image.convert("RGB"))


def _overlay_for(p, i):
    from modules import shared

    if not getattr(shared.opts, "overlay_inpaint", True):
        return None
    overlays = getattr(p, "overlay_images", None)
    return overlays[i] if overlays is not None and i < len(overlays) else None


def _pass_through(st, p, batch_number, n):
    base = batch_number * p.batch_size
    st.batches[batch_number] = [None] * n
    for j in range(n):
        st.slots[base + j] = None
        st.outputs.append((base + j, None))


def rank_batch(p, pp, batch_number):
    """Script.postprocess_batch_list: rank the batch, reorder or cut it with everything A1111 pairs with
    its images, and record each image's fields. Never raises for a server problem: it warns and the
    batch goes on unranked."""
    st = getattr(p, STATE_ATTR, None)
    if st is None:
        return
    n = len(pp.images)
    if n == 0:
        return
    _restore_inputs(st, p)
    if st.unreachable is not None:
        return _pass_through(st, p, batch_number, n)
    prompts = list(getattr(p, "prompts", None) or [])
    if len(prompts) != n or len(getattr(p, "seeds", None) or []) != n:
        warn(p, f"batch {batch_number + 1} has {n} images but {len(prompts)} prompts (another script changed it); not ranked")
        return _pass_through(st, p, batch_number, n)
    results, model = _score(st, p, pp.images, prompts, batch_number)
    if results is None:
        return _pass_through(st, p, batch_number, n)
    groups = ranking.group_ids(prompts)
    s = st.settings
    order, dropped, notes = ranking.plan(results, groups, s.keep_top_k, s.min_score, s.reorder)
    for note in notes:
        warn(p, f"batch {batch_number + 1}: {note}")
    records = _records(results, groups, model, prompts)
    _apply_order(st, p, pp, batch_number, order, dropped)
    base = batch_number * p.batch_size
    st.batches[batch_number] = [records[i] for i in order]
    for j, i in enumerate(order + dropped):
        st.slots[base + j] = records[i]
    st.outputs.extend((base + j, records[i]) for j, i in enumerate(order))
    st.dropped += len(dropped)
    _install_fields(st, p)


def _score(st, p, images, prompts, batch_number):
    """The server's results per image (None where an image failed) and the model id; (None, None) on failure."""
    items = []
    groups = ranking.group_ids(prompts)
    for i, x in enumerate(images):
        rgb = np.ascontiguousarray(saved_pixels(p, x, i))
        items.append({"prompt": prompts[i], "group": groups[i], "rgb": rgb.tobytes(), "width": rgb.shape[1], "height": rgb.shape[0]})
    url = client.server_url(st.settings.url)
    try:
        answer = client.score_raw(items, url=url)
    except client.ServerError as e:
        if e.unreachable:
            st.unreachable = str(e)
            warn(
                p,
                f"{e}; images are saved unranked. Start the server with `pickrank serve` "
                "(or set its address in the PickScore section, or PICKRANK_URL).",
            )
        else:
            warn(p, f"batch {batch_number + 1} not ranked: pickrank serve at {url} answered {e.code}: {e}")
        return None, None
    results = [None] * len(images)
    for r in answer.get("results", []):
        if "score" in r and 0 <= r.get("index", -1) < len(results):
            results[r["index"]] = r
        elif "error" in r:
            err = r["error"]
            warn(p, f"batch {batch_number + 1}, image {r.get('index', 0) + 1} not scored: {err.get('code')}: {err.get('message')}")
    return results, answer.get("model", "")


def _records(results, groups, model, prompts):
    of = {}
    for r, g in zip(results, groups):
        if r is not None:
            of[g] = of.get(g, 0) + 1
    # The server removed the prompt's syntax (cleanPrompt) and says what it scored.
    return [
        Record(r, of[g], model, prompts[i], r.get("scoredPrompt", prompts[i])) if r is not None else None
        for i, (r, g) in enumerate(zip(results, groups))
    ]


def _apply_order(st, p, pp, batch_number, order, dropped):
    """Images in `order`; p's per-batch lists with them (kept only); the batch's slice of each p.all_* list
    reordered in place, kept first then dropped (same length); img2img's per-position inputs with them."""
    n = len(pp.images)
    pp.images = [pp.images[i] for i in order]
    for name in PER_BATCH:
        values = getattr(p, name, None)
        if isinstance(values, list) and len(values) == n:
            setattr(p, name, [values[i] for i in order])
    base = batch_number * p.batch_size
    full = order + dropped
    for name in PER_JOB:
        values = getattr(p, name, None)
        if isinstance(values, list) and len(values) >= base + n:
            values[base : base + n] = [values[base + i] for i in full]
    for name in PER_IMAGE_INPUTS:
        values = getattr(p, name, None)
        if isinstance(values, list) and len(values) == n:
            st.originals.setdefault(name, values)
            setattr(p, name, [values[i] for i in order])


def _restore_inputs(st, p):
    for name, values in st.originals.items():
        setattr(p, name, values)


def _field(key):
    def pickscore_field(p=None, index=None, use_main_prompt=False, all_seeds=None, **_locals):
        """A value of p.extra_generation_params: create_infotext calls it with its locals for each infotext."""
        rec = lookup(p, index, use_main_prompt, all_seeds)
        return rec.fields.get(key) if rec is not None else None

    return pickscore_field


def lookup(p, index, use_main_prompt, all_seeds):
    """The Record of the image whose infotext create_infotext is building, from its arguments.

    The save loop of process_images_inner passes the batch's lists (all_seeds is p.seeds, index the
    position in the batch); Processed.infotext passes the job's (all_seeds is p.all_seeds, index the
    position in the job); the grid's infotext has use_main_prompt (no fields: it is not one image).
    """
    st = getattr(p, STATE_ATTR, None)
    if not isinstance(st, JobState) or use_main_prompt or index is None or all_seeds is None:
        return None
    if all_seeds is getattr(p, "seeds", None):
        records = st.batches.get(getattr(p, "iteration", 0))
        return records[index] if records is not None and 0 <= index < len(records) else None
    if st.compact_seeds is not None and all_seeds is st.compact_seeds:
        return st.outputs[index][1] if 0 <= index < len(st.outputs) else None
    if all_seeds is getattr(p, "all_seeds", None):
        return st.slots.get(index)
    return None


def _install_fields(st, p):
    if st.installed:
        return
    st.installed = True
    for key in FIELD_KEYS:
        p.extra_generation_params[key] = _field(key)


def finish_job(p, processed):
    """Script.postprocess: what API callers and the gallery read. Processed's all_prompts, all_seeds,
    all_subseeds and all_negative_prompts become the kept images' (in output order, aligned with
    processed.images after index_of_first_image, as the UI's seed buttons and API callers pair them),
    and each PickScore field of extra_generation_params becomes the list of the images' values (None
    where an image has none), which Processed.js() sends as JSON."""
    st = getattr(p, STATE_ATTR, None)
    if st is None:
        return
    _restore_inputs(st, p)
    if st.dropped > 0 and processed is not None and len(st.outputs) > 0:
        slots = [s for s, _ in st.outputs]
        for name in ("all_prompts", "all_negative_prompts", "all_seeds", "all_subseeds"):
            values = getattr(processed, name, None)
            if isinstance(values, list) and len(values) > max(slots):
                setattr(processed, name, [values[s] for s in slots])
        st.compact_seeds = getattr(processed, "all_seeds", None)
        width = len(st.outputs)
    else:
        width = max(len(st.outputs), len(getattr(processed, "all_seeds", None) or []))
    if st.installed:
        for key in FIELD_KEYS:
            values = [rec.fields.get(key) if rec is not None else None for _, rec in st.outputs]
            p.extra_generation_params[key] = values + [None] * (width - len(values))
