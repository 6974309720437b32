"""Mirrors modules/scripts.py (v1.10.1): the Script base class, the hook argument objects, the
ScriptRunner loops over always-on scripts, and load_scripts()'s sys.path handling."""
import importlib.util
import os
import re
import sys

from modules import errors

AlwaysVisible = object()


class PostprocessImageArgs:
    def __init__(self, image):
        self.image = image


class PostprocessBatchListArgs:
    def __init__(self, images):
        self.images = images


class Script:
    name = None
    filename = None
    args_from = None
    args_to = None
    alwayson = False
    is_txt2img = False
    is_img2img = False

    def title(self):
        raise NotImplementedError()

    def ui(self, is_img2img):
        pass

    def show(self, is_img2img):
        return True

    def process(self, p, *args):
        pass

    def before_process_batch(self, p, *args, **kwargs):
        pass

    def process_batch(self, p, *args, **kwargs):
        pass

    def postprocess_batch(self, p, *args, **kwargs):
        pass

    def postprocess_batch_list(self, p, pp: PostprocessBatchListArgs, *args, **kwargs):
        pass

    def postprocess_image(self, p, pp: PostprocessImageArgs, *args):
        pass

    def postprocess(self, p, processed, *args):
        pass

    def elem_id(self, item_id):
        need_tabname = self.show(True) == self.show(False)
        tabkind = 'img2img' if self.is_img2img else 'txt2img'
        tabname = f"{tabkind}_" if need_tabname else ""
        title = re.sub(r'[^a-z_0-9]', '', re.sub(r'\s', '_', self.title().lower()))

        return f'script_{tabname}{title}_{item_id}'


def load_module(path):
    # modules/script_loading.py load_module
    module_spec = importlib.util.spec_from_file_location(os.path.basename(path), path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)

    return module


def load_scripts(script_files):
    """load_scripts(): each (basedir, path) is loaded with basedir first on sys.path, restored afterwards.
    Returns the Script subclasses found, in order."""
    found = []
    syspath = sys.path
    for basedir, path in script_files:
        try:
            sys.path = [basedir] + sys.path
            module = load_module(path)
            for _key, script_class in module.__dict__.items():
                if type(script_class) == type and issubclass(script_class, Script) and script_class is not Script:
                    found.append(script_class)
        except Exception:
            errors.report(f"Error loading script: {path}", exc_info=True)
        finally:
            sys.path = syspath
    return found


class ScriptRunner:
    """The always-on part of ScriptRunner: scripts in order, each with its slice of p.script_args."""

    def __init__(self, scripts, is_img2img=False):
        self.alwayson_scripts = []
        self.inputs = []
        for script in scripts:
            script.is_img2img = is_img2img
            script.is_txt2img = not is_img2img
            if script.show(is_img2img) is AlwaysVisible:
                script.alwayson = True
                self.alwayson_scripts.append(script)

    def setup_ui(self, gradio):
        """create_script_ui: ui() per script; args_from/args_to index the returned controls in script_args."""
        self.inputs = [None]
        for script in self.alwayson_scripts:
            controls = script.ui(script.is_img2img) or []
            script.args_from = len(self.inputs)
            script.args_to = len(self.inputs) + len(controls)
            self.inputs.extend(controls)
        return self.inputs

    def _each(self, hook, p, *a, **kw):
        for script in self.alwayson_scripts:
            try:
                script_args = p.script_args[script.args_from:script.args_to]
                getattr(script, hook)(p, *a, *script_args, **kw)
            except Exception:
                errors.report(f"Error running {hook}: {script.filename}", exc_info=True)

    def process(self, p):
        self._each("process", p)

    def before_process_batch(self, p, **kwargs):
        self._each("before_process_batch", p, **kwargs)

    def process_batch(self, p, **kwargs):
        self._each("process_batch", p, **kwargs)

    def postprocess_batch(self, p, images, **kwargs):
        self._each("postprocess_batch", p, images=images, **kwargs)

    def postprocess_batch_list(self, p, pp, **kwargs):
        self._each("postprocess_batch_list", p, pp, **kwargs)

    def postprocess_image(self, p, pp):
        self._each("postprocess_image", p, pp)

    def postprocess(self, p, processed):
        self._each("postprocess", p, processed)
