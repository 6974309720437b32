"""PickScore for AUTOMATIC1111 / Forge: an always-visible script that ranks every batch with `pickrank serve`.

A1111 loads this file with importlib under its base name, with the extension's folder on sys.path only
while it loads (modules/scripts.py load_scripts); Forge's sys.path differs later. So the extension's
own package is loaded here, at load time, from its path (no sys.path change), and kept in sys.modules.
"""
import importlib.util
import os
import sys

from modules import scripts

_PACKAGE = "pickrank_webui"


def _load_package():
    if _PACKAGE in sys.modules:
        return sys.modules[_PACKAGE]
    folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), _PACKAGE)
    spec = importlib.util.spec_from_file_location(_PACKAGE, os.path.join(folder, "__init__.py"), submodule_search_locations=[folder])
    module = importlib.util.module_from_spec(spec)
    sys.modules[_PACKAGE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[_PACKAGE]
        raise
    return module


_pickrank = _load_package()
extension = _pickrank.extension
client = _pickrank.client


class PickScoreScript(scripts.Script):
    """The "PickScore" section of txt2img and img2img. API: "alwayson_scripts": {"PickScore": {"args":
    [enabled, keep_top_k, reorder, min_score, server_url]}}."""

    def title(self):
        return "PickScore"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        import gradio as gr

        with gr.Accordion("PickScore", open=False):
            with gr.Row():
                enabled = gr.Checkbox(label="Rank each batch with PickScore", value=False, elem_id=self.elem_id("enabled"))
                reorder = gr.Checkbox(label="Best first", value=True, elem_id=self.elem_id("reorder"))
            with gr.Row():
                keep_top_k = gr.Number(label="Keep top k of each batch (0: all)", value=0, precision=0, elem_id=self.elem_id("keep_top_k"))
                min_score = gr.Number(label="Minimum score (0: off)", value=0, elem_id=self.elem_id("min_score"))
            url = gr.Textbox(
                label="pickrank serve URL",
                value="",
                placeholder=client.server_url(),
                elem_id=self.elem_id("url"),
            )
        return [enabled, keep_top_k, reorder, min_score, url]

    def process(self, p, *args):
        extension.start_job(p, args)

    def postprocess_batch_list(self, p, pp, *args, **kwargs):
        extension.rank_batch(p, pp, kwargs.get("batch_number", getattr(p, "iteration", 0)))

    def postprocess(self, p, processed, *args):
        extension.finish_job(p, processed)
