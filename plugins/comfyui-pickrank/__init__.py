"""comfyui-pickrank: PickScore ranking and selection nodes for ComfyUI, through `pickrank serve`.

ComfyUI imports this folder under a name derived from its path, without putting it on sys.path: the
pack's own modules are imported relatively. Nothing to pip-install (the standard library, and the torch
and numpy that ComfyUI itself runs on).
"""
from .nodes import PickScoreRank, PickScoreSelect

NODE_CLASS_MAPPINGS = {
    "PickScoreRank": PickScoreRank,
    "PickScoreSelect": PickScoreSelect,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "PickScoreRank": "PickScore Rank (pickrank)",
    "PickScoreSelect": "PickScore Select Best (pickrank)",
}

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
