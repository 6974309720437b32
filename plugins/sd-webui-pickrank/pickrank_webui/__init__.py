"""pickrank for AUTOMATIC1111 / Forge: rank each batch with PickScore through `pickrank serve`.

Every submodule is imported here, when A1111 loads scripts/pickrank.py (the only time the extension's
folder is on sys.path in A1111; Forge differs later), so nothing is imported by name afterwards.
"""
from . import client, extension, ranking  # noqa: F401

__all__ = ["client", "extension", "ranking"]
