"""The extension inside the stub of A1111's processing loop (tests/a1111), against a real `pickrank serve`.

Run by test/plugins/sd-webui-pickrank.test.ts, which starts the server with the tiny model and sets:
PICKRANK_TEST_URL (the server), PICKRANK_TEST_IMAGES (reference images the stub sampler draws from),
PICKRANK_TEST_OUT (a folder: saved images and manifest.json, which the TypeScript side checks with
`pickrank rank`). Standard library, numpy, torch and PIL only (what A1111 has).
"""
import contextlib
import io
import json
import os
import re
import socket
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
EXT_DIR = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "a1111"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import gradio  # noqa: E402  (the recorder in tests/a1111)
import modules.images as images  # noqa: E402
import modules.processing as processing  # noqa: E402
from modules import scripts  # noqa: E402

URL = os.environ.get("PICKRANK_TEST_URL", "")
OUT = os.environ.get("PICKRANK_TEST_OUT", "")
IMAGES = os.environ.get("PICKRANK_TEST_IMAGES", "")
PROMPT = "(a red fox:1.2), snow, <lora:detail:0.8> BREAK forest"
MANIFEST = {"jobs": []}

PickScoreScript = None
path_before_load = None


def setUpModule():
    global PickScoreScript, path_before_load
    if not (URL and OUT and IMAGES):
        raise unittest.SkipTest("run through vitest (test/plugins/sd-webui-pickrank.test.ts), which starts the server")
    processing.SOURCE_IMAGES[:] = [os.path.join(IMAGES, n) for n in ("photo_768.jpg", "rgba_512.png", "gray_300x200.png", "tiny_64x48.png")]
    path_before_load = list(sys.path)
    found = scripts.load_scripts([(EXT_DIR, os.path.join(EXT_DIR, "scripts", "pickrank.py"))])
    PickScoreScript = found[0]


def tearDownModule():
    if OUT:
        with open(os.path.join(OUT, "manifest.json"), "w", encoding="utf-8") as f:
            json.dump(MANIFEST, f, indent=1)


class Spy(scripts.Script):
    """An always-on script after ours: what later scripts see of p at each batch."""

    def title(self):
        return "spy"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def __init__(self):
        self.all_lengths = []
        self.batches = []

    def postprocess_batch_list(self, p, pp, *args, **kwargs):
        self.all_lengths.append(len(p.all_seeds))
        self.batches.append({"seeds": list(p.seeds), "prompts": list(p.prompts), "images": len(pp.images)})


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fields(infotext):
    """The infotext's last line as {key: value} (values unquoted as A1111's parser reads them)."""
    last = infotext.strip().split("\n")[-1]
    out = {}
    for m in re.finditer(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)', last):
        v = m.group(2)
        out[m.group(1)] = json.loads(v) if v.startswith('"') else v
    return out


def saved_infotext(path):
    with Image.open(path) as im:
        return im.info.get("parameters")


def run_job(name, args, batch_size=4, n_iter=2, prompt=PROMPT, seed=1000, img2img=False, overlays=None, api_args=None, restore_faces=False):
    """One process_images call with our script (args as the UI gives them) and the spy; returns
    (p, processed, spy, saved) where saved lists (path, seed, prompt, info) of the samples saved."""
    out = os.path.join(OUT, name)
    cls = processing.StableDiffusionProcessingImg2Img if img2img else processing.StableDiffusionProcessingTxt2Img
    p = cls(prompt=prompt, seed=seed, subseed=7, batch_size=batch_size, n_iter=n_iter, outpath_samples=out, outpath_grids=os.path.join(out, "grids"))
    p.overlay_images = overlays
    p.restore_faces = restore_faces
    spy = Spy()
    runner = scripts.ScriptRunner([PickScoreScript(), spy], is_img2img=img2img)
    controls = runner.setup_ui(gradio)
    script_args = [0] + [c.value for c in controls[1:]]
    ours = runner.alwayson_scripts[0]
    if api_args is not None:
        # modules/api/api.py init_script_args: the request's alwayson_scripts args over the UI defaults, by position
        p.is_api = True
        for idx in range(0, min(ours.args_to - ours.args_from, len(api_args))):
            script_args[ours.args_from + idx] = api_args[idx]
    else:
        script_args[ours.args_from : ours.args_to] = args
    p.scripts = runner
    p.script_args = script_args
    first = len(images.saved)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        processed = processing.process_images(p)
    saved = [s for s in images.saved[first:] if "grids" not in s[0]]
    return p, processed, spy, saved, stderr.getvalue()


def record(name, saved, p):
    """Adds the job's saved samples, grouped by batch, to the manifest the TypeScript side checks."""
    job = {"name": name, "batches": []}
    per_batch = {}
    st = p.pickrank_state
    for (path, seed, prompt, info), (slot, rec) in zip(saved, st.outputs):
        b = slot // p.batch_size
        per_batch.setdefault(b, []).append(
            {"file": path, "seed": seed, "prompt": prompt, "infotext": info, "score": rec.score if rec else None}
        )
    job["batches"] = [per_batch[b] for b in sorted(per_batch)]
    MANIFEST["jobs"].append(job)


class LoadingTest(unittest.TestCase):
    def test_loads_its_package_at_load_time_and_leaves_sys_path_as_it_was(self):
        self.assertEqual(sys.path, path_before_load)
        self.assertNotIn(EXT_DIR, sys.path)
        self.assertIn("pickrank_webui", sys.modules)
        self.assertEqual(sys.modules["pickrank_webui"].__path__, [os.path.join(EXT_DIR, "pickrank_webui")])

    def test_ui_controls_in_the_order_the_hooks_read_them(self):
        runner = scripts.ScriptRunner([PickScoreScript()])
        controls = runner.setup_ui(gradio)[1:]
        self.assertEqual([type(c).__name__ for c in controls], ["Checkbox", "Number", "Checkbox", "Number", "Textbox"])
        ext = sys.modules["pickrank_webui"].extension
        s = ext.Settings.from_args([c.value for c in controls])
        self.assertEqual((s.enabled, s.keep_top_k, s.reorder, s.min_score, s.url), (False, 0, True, None, ""))
        self.assertEqual(runner.alwayson_scripts[0].title(), "PickScore")


class ConversionTest(unittest.TestCase):
    def test_pixels_are_truncated_as_process_images_inner_converts_them(self):
        ext = sys.modules["pickrank_webui"].extension
        x = torch.tensor([[[0.999, 0.5, 1.0], [0.0039, 0.00393, 0.2]]] * 3, dtype=torch.float32)  # CHW, 3×2×3
        got = ext.a1111_uint8(x)
        self.assertEqual(got.shape, (2, 3, 3))
        self.assertEqual(got[0, :, 0].tolist(), [254, 127, 255])  # 254.745 → 254, 127.5 → 127: truncation
        expected = (255. * np.moveaxis(x.cpu().numpy(), 0, 2)).astype(np.uint8)
        self.assertTrue(np.array_equal(got, expected))

    def test_non_contiguous_tensors_convert_the_same(self):
        ext = sys.modules["pickrank_webui"].extension
        big = torch.rand(3, 40, 50, generator=torch.Generator().manual_seed(3))
        view = big[:, 5:37, 3:47:2]
        self.assertFalse(view.is_contiguous())
        self.assertTrue(np.array_equal(ext.a1111_uint8(view), ext.a1111_uint8(view.contiguous())))


class PlanTest(unittest.TestCase):
    def test_unscored_images_are_kept_after_the_scored_ones_and_k_counts_per_prompt(self):
        ranking = sys.modules["pickrank_webui"].ranking
        r = lambda score, rank: {"score": score, "rank": rank}  # noqa: E731
        results = [r(1.0, 2), None, r(3.0, 1), r(5.0, 1), r(2.0, 3), r(4.0, 2)]
        groups = [0, 0, 0, 1, 0, 1]
        self.assertEqual(ranking.plan(results, groups, keep_top_k=1), ([2, 1, 3], [0, 4, 5], []))
        self.assertEqual(ranking.plan(results, groups, keep_top_k=1, reorder=False), ([1, 2, 3], [0, 4, 5], []))
        order, dropped, notes = ranking.plan(results, groups, min_score=4.5)
        self.assertEqual((order, dropped), ([2, 1, 3], [0, 4, 5]))
        self.assertEqual(notes, ["all 3 images scored below the minimum score 4.5 (best 3.000); the best one is kept"])


class RankTest(unittest.TestCase):
    def test_each_batch_is_ranked_reordered_and_saved_with_its_fields(self):
        p, processed, spy, saved, _ = run_job("ranked", [True, 0, True, 0, URL])
        record("ranked", saved, p)
        self.assertEqual(len(saved), 8)
        self.assertEqual(spy.all_lengths, [8, 8])  # p.all_* never shrink while the job runs
        for b in range(2):
            batch = saved[4 * b : 4 * b + 4]
            fs = [fields(info) for _, _, _, info in batch]
            self.assertEqual([f["PickScore rank"] for f in fs], ["1/4", "2/4", "3/4", "4/4"])
            scores = [float(f["PickScore"]) for f in fs]
            self.assertEqual(scores, sorted(scores, reverse=True))
            self.assertAlmostEqual(sum(float(f["PickScore prob"]) for f in fs), 1.0, delta=4 * 0.00005)
            # the seed in the file name, the infotext and the job's list agree; the batch holds its own seeds
            self.assertEqual([int(f["Seed"]) for f in fs], [s for _, s, _, _ in batch])
            self.assertEqual(sorted(s for _, s, _, _ in batch), list(range(1000 + 4 * b, 1004 + 4 * b)))
            self.assertEqual(p.all_seeds[4 * b : 4 * b + 4], [s for _, s, _, _ in batch])
            self.assertEqual(spy.batches[b]["seeds"], [s for _, s, _, _ in batch])
            for f in fs:
                self.assertEqual(f["PickScore model"], "tiny-fp32")
                self.assertEqual(f["PickScore prompt"], "a red fox, snow, forest")
        self.assertEqual(processed.index_of_first_image, 1)
        self.assertNotIn("PickScore", processed.infotexts[0])  # the grid is not one image: no fields
        self.assertEqual(processed.infotexts[1:], [info for _, _, _, info in saved])
        self.assertEqual([saved_infotext(path) for path, _, _, _ in saved], [info for _, _, _, info in saved])
        info = json.loads(processed.js())
        self.assertEqual(info["all_seeds"], [s for _, s, _, _ in saved])
        self.assertEqual(info["extra_generation_params"]["PickScore"], [fields(i)["PickScore"] for _, _, _, i in saved])
        self.assertEqual(info["extra_generation_params"]["PickScore rank"], [fields(i)["PickScore rank"] for _, _, _, i in saved])

    def test_keep_top_k_keeps_the_best_of_each_batch_and_aligns_what_api_callers_read(self):
        p, processed, spy, saved, _ = run_job("top2", [True, 2, True, 0, URL])
        self.assertEqual(len(saved), 4)
        self.assertEqual(spy.all_lengths, [8, 8])
        self.assertEqual(len(p.all_seeds), 8)
        self.assertEqual([b["images"] for b in spy.batches], [2, 2])
        self.assertEqual([fields(i)["PickScore rank"] for _, _, _, i in saved], ["1/4", "2/4", "1/4", "2/4"])
        self.assertEqual(len(processed.images), 1 + 4)  # the grid holds the kept images only
        self.assertEqual(processed.images[0].size, (2 * 96, 2 * 80))
        info = json.loads(processed.js())
        self.assertEqual(info["all_seeds"], [s for _, s, _, _ in saved])
        self.assertEqual(info["all_prompts"], [PROMPT] * 4)
        self.assertEqual(len(info["all_subseeds"]), 4)
        self.assertEqual(info["infotexts"][1:], [i for _, _, _, i in saved])
        self.assertEqual(info["extra_generation_params"]["PickScore"], [fields(i)["PickScore"] for _, _, _, i in saved])
        # the same seeds win as in a run that keeps everything
        _, _, _, full, _ = run_job("top2-reference", [True, 0, True, 0, URL])
        self.assertEqual([s for _, s, _, _ in saved], [full[i][1] for i in (0, 1, 4, 5)])

    def test_minimum_score_drops_the_images_below_it_and_never_a_whole_batch(self):
        _, _, _, full, _ = run_job("min-reference", [True, 0, True, 0, URL], n_iter=1)
        scores = [float(fields(i)["PickScore"]) for _, _, _, i in full]
        threshold = (scores[1] + scores[2]) / 2
        _, _, _, saved, _ = run_job("min", [True, 0, True, threshold, URL], n_iter=1)
        self.assertEqual([s for _, s, _, _ in saved], [s for _, s, _, _ in full[:2]])
        p, processed, _, saved, err = run_job("min-all", [True, 0, True, scores[0] + 1, URL], n_iter=1)
        self.assertEqual([s for _, s, _, _ in saved], [full[0][1]])
        self.assertRegex(processed.comments, r"PickScore: batch 1: all 4 images scored below the minimum score .* the best one is kept")
        self.assertIn("the best one is kept", err)

    def test_reorder_off_keeps_the_order_and_writes_the_fields(self):
        p, processed, _, saved, _ = run_job("in-order", [True, 0, False, 0, URL], n_iter=1)
        self.assertEqual([s for _, s, _, _ in saved], [1000, 1001, 1002, 1003])
        ranks = sorted(fields(i)["PickScore rank"] for _, _, _, i in saved)
        self.assertEqual(ranks, ["1/4", "2/4", "3/4", "4/4"])

    def test_images_of_different_prompts_are_ranked_within_their_prompt_and_keep_their_prompt(self):
        prompts = ["a red fox in the snow", "a lighthouse at dawn", "a red fox in the snow", "a lighthouse at dawn"]
        p, processed, _, saved, _ = run_job("prompts", [True, 0, True, 0, URL], n_iter=1, prompt=list(prompts))
        record("prompts", saved, p)
        pairs = {1000 + i: prompts[i] for i in range(4)}
        self.assertEqual({s: pr for _, s, pr, _ in saved}, pairs)
        for path, seed, prompt, info in saved:
            self.assertTrue(info.startswith(prompt + "\n"))
            self.assertNotIn("PickScore prompt", info)
        self.assertEqual([pr for _, _, pr, _ in saved], [prompts[0], prompts[0], prompts[1], prompts[1]])
        self.assertEqual(sorted(fields(i)["PickScore rank"] for _, _, _, i in saved), ["1/2", "1/2", "2/2", "2/2"])

    def test_inpainting_overlays_follow_their_images_and_the_composite_is_scored(self):
        colours = [(255, 0, 0, 255), (0, 0, 255, 255)]
        overlays = []
        for c in colours:
            o = Image.new("RGBA", (96, 80), (0, 0, 0, 0))
            o.paste(Image.new("RGBA", (30, 80), c), (0, 0))
            overlays.append(o)
        p, processed, _, saved, _ = run_job("inpaint", [True, 0, True, 0, URL], batch_size=2, n_iter=1, img2img=True, overlays=overlays)
        record("inpaint", saved, p)
        for path, seed, _, _ in saved:
            with Image.open(path) as im:
                self.assertEqual(im.convert("RGB").getpixel((5, 5)), colours[seed - 1000][:3])
        self.assertEqual(p.overlay_images, overlays)

    def test_api_callers_get_the_scores_with_args_as_json_sends_them(self):
        p, processed, _, saved, _ = run_job("api", None, n_iter=1, api_args=[True, "2", "true", None, URL])
        info = json.loads(processed.js())
        self.assertEqual(len(info["infotexts"]), 1 + 2)
        self.assertEqual(info["extra_generation_params"]["PickScore rank"], ["1/4", "2/4"])
        self.assertEqual(info["extra_generation_params"]["PickScore"], [fields(i)["PickScore"] for i in info["infotexts"][1:]])
        self.assertEqual(info["all_seeds"], [int(fields(i)["Seed"]) for i in info["infotexts"][1:]])


    def test_face_restoration_on_says_the_scores_are_of_the_images_before_it(self):
        p, processed, _, saved, err = run_job("faces", [True, 0, True, 0, URL], n_iter=1, restore_faces=True)
        self.assertIn("PickScore: face restoration runs after ranking", processed.comments)
        self.assertEqual(sorted(fields(i)["PickScore rank"] for _, _, _, i in saved), ["1/4", "2/4", "3/4", "4/4"])
        _, plain, _, _, _ = run_job("no-faces", [True, 0, True, 0, URL], n_iter=1)
        self.assertNotIn("face restoration", plain.comments)


class ServerDownTest(unittest.TestCase):
    def test_generation_goes_on_unranked_with_one_clear_warning(self):
        down = f"http://127.0.0.1:{closed_port()}"
        p, processed, _, saved, err = run_job("down", [True, 2, True, 0, down])
        self.assertEqual([s for _, s, _, _ in saved], list(range(1000, 1008)))
        for _, _, _, info in saved:
            self.assertNotIn("PickScore", info)
        self.assertEqual(processed.comments.count("PickScore:"), 1)
        self.assertIn(f"no answer from pickrank serve at {down}", processed.comments)
        self.assertIn("Start the server with `pickrank serve`", processed.comments)
        self.assertIn("images are saved unranked", err)
        self.assertNotIn("PickScore", json.dumps(json.loads(processed.js())["extra_generation_params"]))


if __name__ == "__main__":
    unittest.main()
