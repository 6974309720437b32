"""Tests of the node pack against a running `pickrank serve` (the tiny model), with real torch tensors.

Run by test/plugins/comfyui-pickrank.test.ts (`pnpm test`), which starts the server and sets:
  PICKRANK_URL         the server (loopback, free port)
  PICKRANK_TOKEN       its token
  PICKRANK_PARITY_DIR  where the parity cases go: SaveImage's PNGs and the node's results, which the
                       vitest side ranks with `pickrank rank` and compares
By hand: /usr/bin/python3 plugins/comfyui-pickrank/tests/test_nodes.py -v (with those variables set).

The pack is imported the way ComfyUI's nodes.py load_custom_node imports a folder: a spec from the
folder's __init__.py under a name derived from its path, registered in sys.modules before it runs, with
the folder not on sys.path.
"""
import http.server
import importlib.util
import json
import math
import os
import socket
import sys
import threading
import types
import unittest
import urllib.request

import numpy as np
import torch
from PIL import Image

PACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_pack_like_comfyui(module_path):
    """ComfyUI's load_custom_node for a folder (nodes.py): sys_module_name = the path with '.' -> '_x_'."""
    sys_module_name = module_path.replace(".", "_x_")
    spec = importlib.util.spec_from_file_location(sys_module_name, os.path.join(module_path, "__init__.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[sys_module_name] = module
    spec.loader.exec_module(module)
    return module


# ComfyUI's own top-level modules: the pack must neither import them nor shadow them.
COMFY_NODES = types.ModuleType("nodes")
sys.modules["nodes"] = COMFY_NODES
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.getcwd()) != PACK_DIR]
PACK = load_pack_like_comfyui(PACK_DIR)
Rank = PACK.NODE_CLASS_MAPPINGS["PickScoreRank"]
Select = PACK.NODE_CLASS_MAPPINGS["PickScoreSelect"]
client = sys.modules[PACK.__name__ + ".client"]

PROMPT = "a lighthouse at dawn, oil painting"


def node_info(name):
    """What ComfyUI's server.py node_info sends in /object_info for a V1 node class of this pack."""
    cls = PACK.NODE_CLASS_MAPPINGS[name]
    spec = cls.INPUT_TYPES()
    return {
        "input": spec,
        "input_order": {key: list(value.keys()) for (key, value) in spec.items()},
        "is_input_list": getattr(cls, "INPUT_IS_LIST", False),
        "output": cls.RETURN_TYPES,
        "output_is_list": cls.OUTPUT_IS_LIST if hasattr(cls, "OUTPUT_IS_LIST") else [False] * len(cls.RETURN_TYPES),
        "output_name": cls.RETURN_NAMES if hasattr(cls, "RETURN_NAMES") else cls.RETURN_TYPES,
        "name": name,
        "display_name": PACK.NODE_DISPLAY_NAME_MAPPINGS.get(name, name),
        "description": getattr(cls, "DESCRIPTION", ""),
        "category": getattr(cls, "CATEGORY", "sd"),
        "output_node": getattr(cls, "OUTPUT_NODE", False) is True,
        "output_tooltips": cls.OUTPUT_TOOLTIPS,
    }


def save_image_pixels(image):
    """ComfyUI SaveImage's conversion of one IMAGE item, verbatim (nodes.py)."""
    i = 255.0 * image.cpu().numpy()
    return Image.fromarray(np.clip(i, 0, 255).astype(np.uint8))


def fractional_batch(b, h, w, c=3, seed=0):
    """Float pixels as a sampler + VAE produce them: fractional, a little outside [0, 1] at the edges, and
    exactly on the k/255 steps where truncation and rounding differ."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((b, h, w, c), generator=g, dtype=torch.float32) * 1.2 - 0.1
    steps = torch.arange(0, 256, dtype=torch.float32) / 255.0
    x[:, 0, : min(w, 256), 0] = steps[: min(w, 256)]
    x[:, 1, : min(w, 256), 1] = (steps + 0.5 / 255.0)[: min(w, 256)]
    return x


def vae_like_batch(b, h, w, seed=1):
    """What VAEDecode then ImageCrop hand on: decode's [B, C, H, W] moved to [B, H, W, C] (a permuted,
    non-contiguous view), then a crop (another view with offsets)."""
    g = torch.Generator().manual_seed(seed)
    decoded = torch.clamp((torch.randn((b, 3, h + 10, w + 7), generator=g) + 1.0) / 2.0, min=0.0, max=1.0)
    images = decoded.movedim(1, -1)[:, 4 : 4 + h, 2 : 2 + w, :]
    assert not images.is_contiguous()
    return images


def closed_port_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


class EnvPatch:
    def __init__(self, **values):
        self.values = values
        self.saved = {}

    def __enter__(self):
        for k, v in self.values.items():
            self.saved[k] = os.environ.get(k)
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_node(node_class, inputs, func=None):
    """Calls a node the way execution.py does: a fresh object, under torch.inference_mode()."""
    obj = node_class()
    with torch.inference_mode():
        return getattr(obj, func or node_class.FUNCTION)(**inputs)


class Loading(unittest.TestCase):
    def test_loads_as_comfyui_loads_it(self):
        self.assertEqual(set(PACK.NODE_CLASS_MAPPINGS), {"PickScoreRank", "PickScoreSelect"})
        self.assertEqual(set(PACK.NODE_DISPLAY_NAME_MAPPINGS), set(PACK.NODE_CLASS_MAPPINGS))
        self.assertIs(sys.modules["nodes"], COMFY_NODES, "the pack replaced ComfyUI's own nodes module")
        self.assertTrue(Rank.__module__.startswith(PACK.__name__ + "."), Rank.__module__)
        for name in ("server", "utils", "comfy", "folder_paths"):
            self.assertNotIn(name, sys.modules, f"the pack imported ComfyUI's {name}")
        self.assertTrue(os.path.isdir(os.path.join(PACK_DIR, PACK.WEB_DIRECTORY)))

    def test_imports_are_relative_or_standard_library_torch_numpy(self):
        import ast

        allowed = set(getattr(sys, "stdlib_module_names", ())) | {"torch", "numpy"}
        for file in sorted(os.listdir(PACK_DIR)):
            if not file.endswith(".py"):
                continue
            with open(os.path.join(PACK_DIR, file)) as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [a.name.split(".")[0] for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names = [node.module.split(".")[0]]
                else:
                    continue
                for name in names:
                    self.assertIn(name, allowed, f"{file} imports {name}: the pack's own modules are imported relatively")

    def test_registry_metadata(self):
        try:
            import tomllib
        except ImportError:  # Python < 3.11
            self.skipTest("tomllib needs Python 3.11")
        with open(os.path.join(PACK_DIR, "pyproject.toml"), "rb") as f:
            meta = tomllib.load(f)
        self.assertEqual(meta["project"]["name"], "pickrank")
        self.assertRegex(meta["project"]["version"], r"^\d+\.\d+\.\d+$")
        self.assertEqual(meta["project"]["dependencies"], [])
        self.assertEqual(set(meta["tool"]["comfy"]), {"PublisherId", "DisplayName", "Icon"})

    def test_definitions_are_plain_json_and_pair_by_position(self):
        for name, cls in PACK.NODE_CLASS_MAPPINGS.items():
            spec = cls.INPUT_TYPES()
            info = node_info(name)
            text = json.dumps(info, allow_nan=False)
            self.assertEqual(json.loads(text), json.loads(json.dumps(info)))
            for group in spec.values():
                for key, value in group.items():
                    self.assertIsInstance(value, tuple, f"{name}.{key}")
                    self.assertIsInstance(value[0], str, f"{name}.{key}")
            n = len(cls.RETURN_TYPES)
            self.assertEqual((len(cls.RETURN_NAMES), len(cls.OUTPUT_IS_LIST), len(cls.OUTPUT_TOOLTIPS)), (n, n, n))
            self.assertEqual(cls.RETURN_TYPES[:4], ("IMAGE", "FLOAT", "LATENT", "MASK"))
            self.assertEqual(list(spec["required"])[:2], ["images", "prompt"])
            self.assertEqual(list(spec["optional"])[:2], ["latent", "mask"])
            self.assertEqual(list(spec["optional"])[-1], "score_raw_prompt")
            self.assertFalse(hasattr(cls, "INPUT_IS_LIST"), "a list of batches is ranked batch by batch")
        self.assertEqual(list(Select.INPUT_TYPES()["required"]), ["images", "prompt", "k"])


class Parity(unittest.TestCase):
    """Node results next to SaveImage's PNGs of the same tensors, for the vitest side to rank with `pickrank rank`."""

    cases = []

    @classmethod
    def tearDownClass(cls):
        out = os.environ.get("PICKRANK_PARITY_DIR")
        if out:
            with open(os.path.join(out, "cases.json"), "w") as f:
                json.dump(cls.cases, f, indent=1)

    def record(self, name, images, result, prompt=PROMPT):
        out = os.environ.get("PICKRANK_PARITY_DIR")
        if not out:
            self.skipTest("PICKRANK_PARITY_DIR is not set")
        files = []
        for i in range(images.shape[0]):
            path = os.path.join(out, f"{name}_{i:05}_.png")
            save_image_pixels(images[i]).save(path, compress_level=4)  # SaveImage's call
            files.append(path)
        self.__class__.cases.append(
            {"name": name, "prompt": prompt, "scored": result["ui"]["scored_as"][0], "files": files, "node": result["ui"]["pickscore"]}
        )

    def check_outputs(self, images, before, result):
        out_images, scores, latent, mask, indices = result["result"]
        self.assertTrue(torch.equal(images, before), "the node modified its input")
        self.assertEqual(sorted(indices), list(range(images.shape[0])))
        self.assertTrue(torch.equal(out_images, images[torch.tensor(indices)]))
        self.assertEqual(scores, sorted(scores, reverse=True))
        self.assertEqual(scores, [r["score"] for r in result["ui"]["pickscore"]])
        self.assertIsNone(latent)
        self.assertIsNone(mask)
        self.assertAlmostEqual(sum(r["prob"] for r in result["ui"]["pickscore"]), 1.0, places=12)

    def test_fractional_pixels(self):
        images = fractional_batch(5, 40, 300)
        before = images.clone()
        result = run_node(Rank, {"images": images, "prompt": PROMPT})
        self.check_outputs(images, before, result)
        self.record("fractional", images, result)

    def test_vae_decode_then_crop_non_contiguous(self):
        with torch.inference_mode():
            images = vae_like_batch(4, 56, 72)
        before = images.clone()
        result = run_node(Rank, {"images": images, "prompt": PROMPT})
        self.check_outputs(images, before, result)
        self.record("vae_crop", images, result)

    def test_rgba_batch(self):
        images = fractional_batch(3, 32, 32, c=4, seed=5)
        result = run_node(Rank, {"images": images, "prompt": PROMPT})
        self.record("rgba", images, result)

    def test_prompt_syntax_removed_as_pickrank_rank_removes_it(self):
        prompt = "(masterpiece:1.2), a lighthouse at dawn <lora:detail:0.8>, [oil painting], embedding:easynegative"
        images = fractional_batch(4, 32, 48, seed=13)
        result = run_node(Rank, {"images": images, "prompt": prompt})
        self.assertEqual(result["ui"]["scored_as"], ["masterpiece, a lighthouse at dawn, oil painting"])
        self.assertTrue(result["ui"]["text"][0].startswith("scored as: masterpiece, a lighthouse at dawn, oil painting\n"))
        raw = run_node(Rank, {"images": images, "prompt": prompt, "score_raw_prompt": True})
        self.assertEqual(raw["ui"]["scored_as"], [prompt])
        self.assertNotEqual(raw["result"][1], result["result"][1])
        self.record("syntax", images, result, prompt)

    def test_batch_split_over_requests(self):
        images = fractional_batch(7, 24, 24, seed=9)
        saved = client.MAX_REQUEST_IMAGES
        client.MAX_REQUEST_IMAGES = 3  # three requests: the softmax over all is then taken by the client
        try:
            result = run_node(Rank, {"images": images, "prompt": PROMPT})
        finally:
            client.MAX_REQUEST_IMAGES = saved
        self.assertEqual([r["rank"] for r in result["ui"]["pickscore"]], list(range(1, 8)))
        self.record("split", images, result)


class PromptSyntax(unittest.TestCase):
    def test_the_table_of_real_prompts_through_the_server(self):
        # The server removes the syntax with the code pickrank rank runs (core's scoringPrompt); the node
        # shows the text it scored. A prompt that is nothing but syntax is scored as written.
        table = os.path.join(PACK_DIR, "..", "..", "packages", "core", "test", "data", "prompt-syntax-cases.json")
        with open(table, encoding="utf-8") as f:
            cases = json.load(f)["cases"]
        self.assertGreaterEqual(len(cases), 25)
        images = fractional_batch(1, 8, 8, seed=19)
        for case in cases:
            result = run_node(Rank, {"images": images, "prompt": case["prompt"]})
            self.assertEqual(result["ui"]["scored_as"], [case["score"] or case["prompt"]], case["name"])

    def test_nothing_but_syntax_is_scored_as_written(self):
        images = fractional_batch(2, 16, 16, seed=17)
        result = run_node(Rank, {"images": images, "prompt": "<lora:x:1> embedding:bad"})
        self.assertEqual(result["ui"]["scored_as"], ["<lora:x:1> embedding:bad"])
        self.assertIn("nothing but weights and tags, so it is scored as written", result["ui"]["text"][0])


class Carry(unittest.TestCase):
    """LATENT and MASK follow the images; the inputs stay as they were."""

    def setUp(self):
        with torch.inference_mode():
            self.images = fractional_batch(4, 32, 40, seed=3)
            b = self.images.shape[0]
            ids = torch.arange(b, dtype=torch.float32)
            self.latent = {
                "samples": ids.view(b, 1, 1, 1).expand(b, 4, 4, 5).clone(),
                "noise_mask": ids.view(b, 1, 1, 1).expand(b, 1, 4, 5).clone(),
                "type": "kept as it is",
            }
            self.mask = ids.view(b, 1, 1).expand(b, 32, 40).clone()

    def test_rank_reorders_latent_noise_mask_batch_index_and_mask(self):
        latent_before = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in self.latent.items()}
        keys_before = set(self.latent)
        result = run_node(Rank, {"images": self.images, "prompt": PROMPT, "latent": self.latent, "mask": self.mask})
        out_images, _scores, latent, mask, order = result["result"]
        self.assertEqual([int(latent["samples"][j, 0, 0, 0]) for j in range(4)], order)
        self.assertEqual([int(latent["noise_mask"][j, 0, 0, 0]) for j in range(4)], order)
        self.assertEqual(latent["batch_index"], order)
        self.assertEqual(latent["type"], "kept as it is")
        self.assertEqual([int(mask[j, 0, 0]) for j in range(4)], order)
        self.assertTrue(torch.equal(out_images, self.images[torch.tensor(order)]))
        self.assertEqual(set(self.latent), keys_before, "the node added keys to its input LATENT")
        for k, v in latent_before.items():
            self.assertTrue(torch.equal(self.latent[k], v) if torch.is_tensor(v) else self.latent[k] == v, k)

    def test_select_keeps_k_with_their_latents_and_existing_batch_index(self):
        latent = dict(self.latent, batch_index=[10, 11, 12, 13])
        ranked = run_node(Rank, {"images": self.images, "prompt": PROMPT})["result"]
        result = run_node(Select, {"images": self.images, "prompt": PROMPT, "k": 2, "latent": latent, "mask": self.mask})
        out_images, scores, out_latent, mask, order = result["result"]
        self.assertEqual(order, ranked[4][:2])
        self.assertEqual(scores, ranked[1][:2])
        self.assertEqual(out_images.shape[0], 2)
        self.assertEqual(out_latent["samples"].shape[0], 2)
        self.assertEqual([int(out_latent["samples"][j, 0, 0, 0]) for j in range(2)], order)
        self.assertEqual(out_latent["batch_index"], [10 + i for i in order])
        self.assertEqual([int(mask[j, 0, 0]) for j in range(2)], order)
        self.assertEqual(latent["batch_index"], [10, 11, 12, 13])

    def test_one_mask_for_all_stays_one_mask(self):
        mask = torch.ones((1, 32, 40))
        result = run_node(Select, {"images": self.images, "prompt": PROMPT, "k": 2, "mask": mask})
        self.assertIs(result["result"][3], mask)

    def test_bad_call_latent_or_mask_of_another_batch_size_before_any_request(self):
        latent = {"samples": torch.zeros((3, 4, 4, 5))}
        with EnvPatch(PICKRANK_URL=closed_port_url()):  # refused before the server is asked
            with self.assertRaisesRegex(ValueError, r"Expected a LATENT with one latent per image \(4\) but received 3"):
                run_node(Rank, {"images": self.images, "prompt": PROMPT, "latent": latent})
            with self.assertRaisesRegex(ValueError, r"Expected a MASK with one mask per image \(4\) or one for all but received 2"):
                run_node(Select, {"images": self.images, "prompt": PROMPT, "k": 1, "mask": torch.zeros((2, 32, 40))})


class Select_(unittest.TestCase):
    def setUp(self):
        self.images = fractional_batch(5, 24, 32, seed=11)
        self.ranked = run_node(Rank, {"images": self.images, "prompt": PROMPT})

    def test_k_best_best_first(self):
        result = run_node(Select, {"images": self.images, "prompt": PROMPT, "k": 3})
        self.assertEqual(result["result"][4], self.ranked["result"][4][:3])
        self.assertEqual(result["result"][1], self.ranked["result"][1][:3])
        self.assertEqual(result["result"][0].shape, (3, 24, 32, 3))
        self.assertEqual([r["kept"] for r in result["ui"]["pickscore"]], [True, True, True, False, False])

    def test_k_above_the_batch_keeps_all(self):
        result = run_node(Select, {"images": self.images, "prompt": PROMPT, "k": 50})
        self.assertEqual(result["result"][4], self.ranked["result"][4])

    def test_min_score_drops_the_images_below_it(self):
        scores = self.ranked["result"][1]
        threshold = (scores[1] + scores[2]) / 2
        result = run_node(Select, {"images": self.images, "prompt": PROMPT, "k": 4, "min_score": threshold})
        self.assertEqual(result["result"][1], scores[:2])
        self.assertNotIn("No image reached", result["ui"]["text"][0])

    def test_min_score_that_rejects_all_keeps_the_best_and_says_so(self):
        best = self.ranked["result"][1][0]
        with self.assertLogs("comfyui-pickrank", level="WARNING") as logs:
            result = run_node(Select, {"images": self.images, "prompt": PROMPT, "k": 3, "min_score": best + 1.0})
        images, scores, _latent, _mask, order = result["result"]
        self.assertEqual(images.shape[0], 1)
        self.assertEqual(scores, [best])
        self.assertEqual(order, self.ranked["result"][4][:1])
        message = f"No image reached min_score {best + 1.0:.3f}; kept the best one (image {order[0]}, score {best:.3f})."
        self.assertTrue(result["ui"]["text"][0].startswith(message), result["ui"]["text"][0])
        self.assertIn(message, logs.output[0])

    def test_unconnected_optional_inputs_are_left_out(self):
        # execution.py passes only what the prompt holds: an API prompt without min_score, latent, mask.
        result = Select().select(images=self.images, prompt=PROMPT, k=1)
        self.assertEqual(result["result"][4], self.ranked["result"][4][:1])

    def test_bad_call_k_zero(self):
        with self.assertRaisesRegex(ValueError, r"Expected k, the number of images to keep, to be an integer >= 1 but received 0"):
            run_node(Select, {"images": self.images, "prompt": PROMPT, "k": 0})


class Ui(unittest.TestCase):
    def test_ui_values_are_lists_of_strict_json_and_merge_over_a_list_of_batches(self):
        # execution.py get_output_data: one call per list item, then ui = {k: [y for x in uis for y in x[k]]}
        # and list outputs (OUTPUT_IS_LIST) concatenated.
        batches = [fractional_batch(2, 16, 16, seed=21), fractional_batch(3, 16, 16, seed=22)]
        results = [run_node(Rank, {"images": b, "prompt": PROMPT}) for b in batches]
        uis = [r["ui"] for r in results]
        for ui in uis:
            self.assertTrue(all(isinstance(v, list) for v in ui.values()))
        merged = {k: [y for x in uis for y in x[k]] for k in uis[0].keys()}
        self.assertEqual(len(merged["text"]), 2)
        self.assertEqual(len(merged["pickscore"]), 5)
        json.dumps(merged, allow_nan=False)
        scores = [x for r in results for x in r["result"][1]]
        self.assertEqual(len(scores), 5)
        self.assertTrue(all(math.isfinite(s) for s in scores))
        first = results[0]["ui"]["text"][0].splitlines()[0]
        top = results[0]["ui"]["pickscore"][0]
        self.assertEqual(first, f"1. image {top['index']}: score {top['score']:.3f}, prob {top['prob']:.4f}")


class Transport(unittest.TestCase):
    def test_requests_split_by_bytes_and_by_images(self):
        self.assertEqual([len(c) for c in client._chunks(5, client.MAX_REQUEST_BYTES // 2)], [2, 2, 1])
        self.assertEqual([len(c) for c in client._chunks(130, 3)], [64, 64, 2])
        self.assertEqual([len(c) for c in client._chunks(2, client.MAX_REQUEST_BYTES * 2)], [1, 1])

    def test_proxies_kept_for_other_hosts(self):
        with EnvPatch(http_proxy="http://proxy.example:3128", no_proxy=None, NO_PROXY=None):
            far = [h for h in client._opener("http://192.0.2.7:7865").handlers if isinstance(h, urllib.request.ProxyHandler)]
            near = [h for h in client._opener("http://[::1]:7865").handlers if isinstance(h, urllib.request.ProxyHandler)]
        self.assertEqual(far[0].proxies.get("http"), "http://proxy.example:3128")
        # ProxyHandler({}) has no protocol methods, so the opener holds no proxy handler at all.
        self.assertEqual([h.proxies for h in near if h.proxies], [])
        for host in ("127.0.0.1", "127.8.9.1", "localhost", "[::1]", "::1"):
            self.assertTrue(client.is_loopback(host), host)
        for host in ("192.0.2.7", "example.com", "", None):
            self.assertFalse(client.is_loopback(host), host)

    def test_busy_answers_are_retried_after_retry_after(self):
        results = [{"index": 1, "score": 2.5, "prob": 0.6, "rank": 1}, {"index": 0, "score": 2.1, "prob": 0.4, "rank": 2}]
        answers = [
            (429, {"Retry-After": "0"}, {"error": {"code": "BUSY", "message": "Expected fewer requests"}}),
            (200, {}, {"results": results}),
        ]
        seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                seen.append((self.path, self.headers["Content-Type"].split(";")[0]))
                self.rfile.read(int(self.headers["Content-Length"]))
                status, headers, body = answers[len(seen) - 1]
                data = json.dumps(body).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        stub = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=stub.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{stub.server_port}"
            ranked = client.rank("a fox", [b"\0\0\0", b"\1\1\1"], 1, 1, url=url, token="t" * 20)["results"]
        finally:
            stub.shutdown()
            stub.server_close()
        self.assertEqual(seen, [("/v1/rank", "multipart/form-data")] * 2)
        self.assertEqual([(r["index"], r["rank"]) for r in ranked], [(1, 1), (0, 2)])

    def test_a_refusal_of_the_real_server_is_its_code_and_message(self):
        saved = client.MAX_REQUEST_IMAGES
        client.MAX_REQUEST_IMAGES = 1000
        try:
            with self.assertRaises(client.PickrankServerError) as ctx:
                run_node(Rank, {"images": torch.zeros((257, 1, 1, 3)), "prompt": PROMPT})
        finally:
            client.MAX_REQUEST_IMAGES = saved
        self.assertEqual((ctx.exception.code, ctx.exception.status), ("PAYLOAD_TOO_LARGE", 413))
        self.assertIn("refused the images: Expected at most 256 images in one request (the server's --max-images)", str(ctx.exception))


class Errors(unittest.TestCase):
    def setUp(self):
        self.images = fractional_batch(2, 16, 16, seed=31)

    def test_server_down_says_how_to_start_it(self):
        url = closed_port_url()
        with EnvPatch(PICKRANK_URL=url):
            with self.assertRaises(client.PickrankServerError) as ctx:
                run_node(Rank, {"images": self.images, "prompt": PROMPT})
        message = str(ctx.exception)
        self.assertEqual(ctx.exception.code, "UNREACHABLE")
        self.assertIn(f"pickrank serve is not running at {url}", message)
        self.assertIn("Start it in a terminal with `pickrank serve`", message)
        self.assertIn("PICKRANK_URL", message)

    def test_server_that_never_answers_is_a_timeout(self):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        saved = client.TIMEOUT_S
        client.TIMEOUT_S = 0.5
        try:
            with EnvPatch(PICKRANK_URL=f"http://127.0.0.1:{listener.getsockname()[1]}"):
                with self.assertRaises(client.PickrankServerError) as ctx:
                    run_node(Rank, {"images": self.images, "prompt": PROMPT})
        finally:
            client.TIMEOUT_S = saved
            listener.close()
        self.assertEqual(ctx.exception.code, "TIMEOUT")
        self.assertIn("did not answer within 0.5 s", str(ctx.exception))

    def test_loopback_goes_around_a_proxy(self):
        dead_proxy = closed_port_url()
        env = {k: dead_proxy for k in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")}
        with EnvPatch(no_proxy=None, NO_PROXY=None, **env):
            result = run_node(Rank, {"images": self.images, "prompt": PROMPT})
        self.assertEqual(len(result["result"][1]), 2)

    def test_bad_call_pickrank_url_without_scheme(self):
        with EnvPatch(PICKRANK_URL="127.0.0.1:7865"):
            with self.assertRaises(client.PickrankServerError) as ctx:
                run_node(Rank, {"images": self.images, "prompt": PROMPT})
        self.assertEqual(ctx.exception.code, "BAD_INPUT")
        expected = "Expected PICKRANK_URL to be the server's address, such as http://127.0.0.1:7865, but received '127.0.0.1:7865'"
        self.assertIn(expected, str(ctx.exception))

    def test_wrong_token_says_which_variable(self):
        if not os.environ.get("PICKRANK_TOKEN"):
            self.skipTest("the server runs without a token")
        with EnvPatch(PICKRANK_TOKEN="x" * 32):
            with self.assertRaises(client.PickrankServerError) as ctx:
                run_node(Rank, {"images": self.images, "prompt": PROMPT})
        self.assertEqual((ctx.exception.code, ctx.exception.status), ("UNAUTHORIZED", 401))
        self.assertIn("Set PICKRANK_TOKEN", str(ctx.exception))

    def test_bad_call_empty_prompt(self):
        with self.assertRaisesRegex(ValueError, "Expected a prompt"):
            run_node(Rank, {"images": self.images, "prompt": "  "})

    def test_bad_call_empty_batch(self):
        with self.assertRaisesRegex(ValueError, r"Expected at least one image"):
            run_node(Rank, {"images": torch.zeros((0, 16, 16, 3)), "prompt": PROMPT})

    def test_bad_call_not_an_image_batch(self):
        with self.assertRaisesRegex(ValueError, r"Expected images as an IMAGE batch \[B, H, W, C\] but received \(16, 16, 3\)"):
            run_node(Rank, {"images": torch.zeros((16, 16, 3)), "prompt": PROMPT})


if __name__ == "__main__":
    if sys.argv[1:] == ["--object-info"]:
        # The pack's part of GET /object_info, for the workflow checks of the vitest side.
        print(json.dumps({name: node_info(name) for name in PACK.NODE_CLASS_MAPPINGS}, allow_nan=False))
        sys.exit(0)
    unittest.main()
