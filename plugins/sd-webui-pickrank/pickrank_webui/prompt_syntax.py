"""The text PickScore scores for an A1111 / Forge prompt: a port of pickrank's scoringPrompt.

A line-for-line port of packages/selector/src/prompt-syntax.ts (`scoringPrompt`), so that the score an
image gets here is the score `pickrank rank --prompt "<the image's prompt>"` gives its saved file: the
words stay, the syntax goes (weights, <lora:…> tags, prompt editing, alternation, BREAK/AND, escapes).
The module comment of prompt-syntax.ts holds the table of what each construct becomes.

JavaScript's regular expressions differ from Python's where it matters here, and the port spells the
JavaScript meaning out: `\\s` is ECMAScript's white-space set (JS_SPACE), `\\w`, `\\d` and `\\b` are
ASCII, and `$` is the end of the text (Python's `\\Z`, not "before a final newline"). The vitest suite
checks the port against the TypeScript function on its case table and on generated prompts.
"""
import re

# ECMAScript WhiteSpace and LineTerminator: what `\s` matches in JavaScript.
JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"

_CLOSE = {"(": ")", "[": "]", "{": "}"}
_ESCAPABLE = set("()[]{}\\")
_SPECIAL = set("\\()[]{}<:|e")
_NETWORK_TAG = re.compile(r"<[A-Za-z][A-Za-z0-9_-]*:[^<>]*>")
_EMBEDDING = re.compile("embedding:[^" + JS_SPACE + r",()\[\]{}|<>:]+")
_BEFORE_EMBEDDING = re.compile("[" + JS_SPACE + r",(\[{|]")
_NUMBER = re.compile("[" + JS_SPACE + r"]*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[" + JS_SPACE + r"]*\Z")
_AND_WEIGHT = re.compile("[" + JS_SPACE + "]*:[" + JS_SPACE + r"]*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[" + JS_SPACE + r"]*\Z")
_AND = re.compile(r"\bAND\b", re.ASCII)
_BREAK = re.compile(r"\bBREAK\b", re.ASCII)
_WILDCARD = re.compile(r"__([A-Za-z0-9_\-/*]+?)__")
_OPTION_PREFIX = re.compile(r"\A[" + JS_SPACE + r"]*[0-9-]*\$\$(?:[^$]*\$\$)?")
_WEIGHT_TEXT = re.compile("[" + JS_SPACE + r"]*[0-9.]*[" + JS_SPACE + r"]*\Z")

# Nodes: ("text", s) | ("sep", ":" or "|") | ("group", open, body) | ("tag",)


def _parse_seq(src, i, close):
    """Parses until `close` (or the end); `i` is the first character after the opening bracket."""
    nodes = []

    def text(s):
        if nodes and nodes[-1][0] == "text":
            nodes[-1] = ("text", nodes[-1][1] + s)
        else:
            nodes.append(("text", s))

    while i < len(src):
        c = src[i]
        nxt = src[i + 1] if i + 1 < len(src) else ""
        if c == "\\" and nxt in _ESCAPABLE and nxt != "":
            text(nxt)
            i += 2
        elif c in "([{":
            inner, end = _parse_seq(src, i + 1, _CLOSE[c])
            nodes.append(("group", c, inner))
            i = end
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
            while j < len(src) and src[j] not in _SPECIAL:
                j += 1
            text(src[i:j])
            i = j
    return nodes, i


def _split(nodes, sep):
    parts = [[]]
    for n in nodes:
        if n[0] == "sep" and n[1] == sep:
            parts.append([])
        else:
            parts[-1].append(n)
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
            for k, p in enumerate(parts[:-1]):
                if k > 0:
                    joined.append(("sep", ":"))
                joined.extend(p)
            return _render(joined)
        return _render(body)
    if open_ == "{":
        options = _split(body, "|")
        return _render_options([_drop_weight_colons(_strip_option_prefix(o, k == 0)) for k, o in enumerate(options)])
    alternatives = _split(body, "|")
    if len(alternatives) > 1:
        return _render_options(alternatives)
    parts = _split(body, ":")
    if (len(parts) == 2 or len(parts) == 3) and _is_number(parts[-1]):
        # [to:when] → to; [from:to:when] → to; [from::when] → nothing.
        return _render(parts[-2])
    return _render(body)


def _wildcard(m):
    name = m.group(1).split("/")[-1]
    return " " + re.sub(r"[_*]+", " ", name) + " "


def _render_text(s):
    return _WILDCARD.sub(_wildcard, _BREAK.sub(",", s))


def _render(nodes):
    out = []
    for n in nodes:
        if n[0] == "text":
            out.append(_render_text(n[1]))
        elif n[0] == "sep":
            out.append(n[1])
        elif n[0] == "tag":
            out.append(" ")
        else:
            # A1111 tokenizes each weighted piece on its own: "red(cat)" is "red" and "cat".
            out.append(" " + _render_group(n[1], n[2]) + " ")
    return "".join(out)


def _tidy(s):
    s = re.sub("[" + JS_SPACE + "]+", " ", s)
    s = re.sub("[" + JS_SPACE + "]*,[" + JS_SPACE + ",]*", ", ", s)
    s = re.sub("[" + JS_SPACE + r"]+([.;!?])", r"\1", s)
    return re.sub("^[" + JS_SPACE + ",]+|[" + JS_SPACE + r",]+\Z", "", s)


def scoring_prompt(prompt):
    """The text PickScore scores for `prompt` (str): its words without A1111 / ComfyUI syntax.

    Port of scoringPrompt() in packages/selector/src/prompt-syntax.ts; pure and total (never raises);
    may return "" when the prompt is nothing but syntax (the caller then scores the prompt as written,
    as the CLI's resolveScorePrompt does).
    """
    parts = [_AND_WEIGHT.sub("", p, count=1) for p in _AND.split(prompt)]
    return _tidy(", ".join(_render(_parse_seq(p, 0, None)[0]) for p in parts))


def score_text(prompt):
    """What `pickrank rank --prompt <prompt>` scores: scoring_prompt(prompt), or the prompt as written when
    nothing but syntax is left (packages/selector/src/score-prompt.ts, resolveScorePrompt)."""
    text = scoring_prompt(prompt)
    return text if text != "" else prompt
