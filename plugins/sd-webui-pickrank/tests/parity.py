"""Reads {"numbers": [float]} on stdin and prints the Python side of the number-format check:
{"scores": [format_score(x)], "probs": [format_prob(x)]}."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pickrank_webui.ranking import format_prob, format_score  # noqa: E402

data = json.load(sys.stdin)
json.dump({"scores": [format_score(x) for x in data["numbers"]], "probs": [format_prob(x) for x in data["numbers"]]}, sys.stdout)
