"""A recorder in gradio's place for ui(): components keep their label and value; layouts are context managers."""


class _Component:
    def __init__(self, label=None, value=None, **kwargs):
        self.label = label
        self.value = value
        self.kwargs = kwargs


class Checkbox(_Component):
    pass


class Number(_Component):
    pass


class Textbox(_Component):
    pass


class _Layout:
    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Accordion(_Layout):
    pass


class Row(_Layout):
    pass
