"""Mirrors the parts of modules/shared.py (opts, state) that processing and the extension read."""


class _Opts:
    # Defaults of modules/shared_options.py (v1.10.1).
    samples_save = True
    samples_format = "png"
    grid_save = True
    grid_format = "png"
    return_grid = True
    enable_pnginfo = True
    overlay_inpaint = True
    grid_only_if_multiple = True
    n_rows = -1
    grid_prevent_empty_spots = False
    save_incomplete_images = False


class _State:
    interrupted = False
    skipped = False
    stopping_generation = False
    job_count = -1
    job_timestamp = "20260101000000"

    def nextjob(self):
        pass


class _PromptStyles:
    # modules/styles.py StyleDatabase with no style selected: the prompt as it is
    def apply_styles_to_prompt(self, prompt, styles):
        return prompt

    def apply_negative_styles_to_prompt(self, prompt, styles):
        return prompt


opts = _Opts()
prompt_styles = _PromptStyles()
state = _State()
