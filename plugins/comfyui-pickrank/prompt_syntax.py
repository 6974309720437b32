"""The text PickScore scores for a ComfyUI / A1111 prompt: a port of pickrank's scoringPrompt
(packages/selector/src/prompt-syntax.ts), so that a node scores what `pickrank rank --prompt` scores.

The words stay, the syntax goes: `(word:1.2)` -> `word`, `[from:to:0.5]` -> `to`, `{a|b}` -> `a b`,
`<lora:x:0.8>` and `embedding:name` -> nothing, BREAK/AND -> `,`, escapes -> the literal character;
then the separators the removals leave are tidied. The TypeScript module's comment has the full table;
the tests run this port over that module's own table of cases and over random prompts against it.

Regular expressions are written to mean what they mean in JavaScript: ASCII \\b, \\w and \\d, JavaScript's
set of white space, and \\Z where JavaScript's $ (no m flag) means the very end.
"""
import re

_WS = "\\t\\n\\v\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
_A = re.ASCII

_CLOSE = {"(": ")", "[": "]", "{": "}"}
_ESCAPABLE = set("()[]{}\\")
_SPECIAL = set("\\()[]{}<:|e")
_NETWORK_TAG = re.compile(r"<[A-Za-z][\w-]*:[^<>]*>", _A)
_EMBEDDING = re.compile(r"embedding:[^" + _WS + r",()\[\]{}|<>:]+", _A)
_BEFORE_EMBEDDING = re.compile(r"[" + _WS + r",(\[{|]", _A)
_NUMBER = re.compile(r"[" + _WS + r"]*[+-]?(?:\d+\.?\d*|\.\d+)[" + _WS + r"]*\Z", _A)
_AND_WEIGHT = re.compile(r"[" + _WS + r"]*:[" + _WS + r"]*[+-]?(?:\d+\.?\d*|\.\d+)[" + _WS + r"]*\Z", _A)
_OPTION_PREFIX = re.compile(r"\A[" + _WS + r"]*[\d-]*\$\$(?:[^$]*\$\$)?", _A)
_WEIGHT_TEXT = re.compile(r"[" + _WS + r"]*[\d.]*[" + _WS + r"]*\Z", _A)
_AND = re.compile(r"\bAND\b", _A)
_BREAK = re.compile(r"\bBREAK\b", _A)
_WILDCARD = re.compile(r"__([\w\-/*]+?)__", _A)


def _parse_seq(src, i, close):
    """Parses until `close` (or the end); `i` is the first character after the opening bracket.
    Nodes: ("text", s), ("sep", ":"|"|"), ("group", open, body), ("tag",)."""
    nodes = []

    def text(s):
        if nodes and nodes[-1][0] == "text":
            nodes[-1] = ("text", nodes[-1][1] + s)
        else:
            nodes.append(("text", s))

    n = len(src)
    while i < n:
        c = src[i]
        if c == "\\" and i + 1 < n and src[i + 1] in _ESCAPABLE:
            text(src[i + 1])
            i += 2
        elif c in "([{":
            body, i = _parse_seq(src, i + 1, _CLOSE[c])
            nodes.append(("group", c, body))
        elif c == close:
            return nodes, i + 1
        elif c in ")]}":
            i += 1  # a stray closing bracket: a typo, not a word
        elif c == "<" and _NETWORK_TAG.match(src, i):
            nodes.append(("tag",))
            i = _NETWORK_TAG.match(src, i).end()
        elif c == "e" and (i == 0 or _BEFORE_EMBEDDING.match(src[i - 1])) and _EMBEDDING.match(src, i):
            nodes.append(("tag",))
            i = _EMBEDDING.match(src, i).end()
        elif c in ":|":
            nodes.append(("sep", c))
            i += 1
        else:
            j = i + 1
            while j < n and src[j] not in _SPECIAL:
                j += 1
            text(src[i:j])
            i = j
    return nodes, i


def _split(nodes, sep):
    parts = [[]]
    for node in nodes:
        if node[0] == "sep" and node[1] == sep:
            parts.append([])
        else:
            parts[-1].append(node)
    return parts


def _is_number(nodes):
    return nodes is not None and len(nodes) == 1 and nodes[0][0] == "text" and _NUMBER.match(nodes[0][1]) is not None


def _strip_option_prefix(option, first):
    if not option or option[0][0] != "text" or not first:
        return option
    return [("text", _OPTION_PREFIX.sub("", option[0][1], count=1))] + option[1:]


def _drop_weight_colons(option):
    if (
        len(option) >= 3
        and option[0][0] == "text"
        and _WEIGHT_TEXT.match(option[0][1])
        and option[1] == ("sep", ":")
        and option[2] == ("sep", ":")
    ):
        return option[3:]
    return option


def _render_options(options):
    return " ".join(_render(o) for o in options)


def _render_group(open_, body):
    if open_ == "(":
        parts = _split(body, ":")
        if len(parts) > 1 and _is_number(parts[-1]):
            joined = []
            for k, part in enumerate(parts[:-1]):
                if k > 0:
                    joined.append(("sep", ":"))
                joined.extend(part)
            return _render(joined)
        return _render(body)
    if open_ == "{":
        return _render_options([_drop_weight_colons(_strip_option_prefix(o, k == 0)) for k, o in enumerate(_split(body, "|"))])
    alternatives = _split(body, "|")
    if len(alternatives) > 1:
        return _render_options(alternatives)
    parts = _split(body, ":")
    if _is_number(parts[-1]) and len(parts) in (2, 3):
        return _render(parts[-2])  # [to:when] -> to; [from:to:when] -> to; [from::when] -> nothing
    return _render(body)


def _render_text(s):
    s = _BREAK.sub(",", s)
    return _WILDCARD.sub(lambda m: " " + re.sub(r"[_*]+", " ", m.group(1).split("/")[-1]) + " ", s)


def _render(nodes):
    out = []
    for node in nodes:
        if node[0] == "text":
            out.append(_render_text(node[1]))
        elif node[0] == "sep":
            out.append(node[1])
        elif node[0] == "tag":
            out.append(" ")
        else:
            # A1111 and ComfyUI tokenize each weighted piece on its own: "red(cat)" is "red" and "cat".
            out.append(" " + _render_group(node[1], node[2]) + " ")
    return "".join(out)


def _tidy(s):
    s = re.sub("[" + _WS + "]+", " ", s)
    s = re.sub("[" + _WS + "]*,[" + _WS + ",]*", ", ", s)
    s = re.sub("[" + _WS + "]+([.;!?])", r"\1", s)
    return re.sub("^[" + _WS + ",]+|[" + _WS + ",]+\\Z", "", s)


def scoring_prompt(prompt):
    """The text PickScore should score for an A1111 / ComfyUI prompt (see the module comment); "" when the
    prompt is nothing but syntax. Never raises for a str (a prompt nested deeper than Python's recursion
    limit, about 900 brackets, is returned as written)."""
    try:
        parts = [_AND_WEIGHT.sub("", p, count=1) for p in _AND.split(prompt)]
        return _tidy(", ".join(_render(_parse_seq(p, 0, None)[0]) for p in parts))
    except RecursionError:
        return prompt
