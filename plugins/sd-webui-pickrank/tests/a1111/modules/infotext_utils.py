"""Mirrors modules/infotext_utils.py quote() (v1.10.1)."""
import json


def quote(text):
    if ',' not in str(text) and '\n' not in str(text) and ':' not in str(text):
        return text

    return json.dumps(text, ensure_ascii=False)
