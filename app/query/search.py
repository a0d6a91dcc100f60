"""The words of a full-text search, made into what InnoDB's parser always takes (pure). Its parser
refuses a stray `*`, `@` or `)` with a syntax error, and nests parentheses until it runs out of
memory: a search is written out again from its words, phrases and operators, so no input reaches
the server as anything but a search."""

from __future__ import annotations

import re

from app.core.errors import InvalidFilter

MAX_DEPTH = 5  # parentheses within parentheses
# One piece of a boolean search: an operator, a parenthesis, a "phrase" (and its @distance), a word
# (and its truncation *), or anything else (a separator, as InnoDB's tokenizer takes it).
_PIECE = re.compile(r'([+\-~<>])|(\()|(\))|"([^"]*)"?(?:\s*@\s*(\d+))?|(\w+)(\*)?|.', re.S)
_WORD = re.compile(r"\w+")


def natural(text: str) -> str:
    """Natural language mode: its words, nothing else (operators mean nothing there)."""
    return " ".join(_WORD.findall(text))


def boolean(text: str) -> str:
    """Boolean mode: `+must -not ~less <less >more "a phrase" @3 pre* (groups)`, rewritten from what
    it means; a stray operator or character is a separator; unbalanced or too deep parentheses: 400."""
    out: list[str] = []
    depth, prefix = 0, ""
    for match in _PIECE.finditer(text):
        operator, opening, closing, phrase, distance, word, star = match.groups()
        if operator:
            prefix = operator  # applies to what follows at once; a dangling one is dropped
            continue
        if opening:
            depth += 1
            if depth > MAX_DEPTH:
                raise InvalidFilter(f"a full-text search nests parentheses at most {MAX_DEPTH} deep")
            out.append(prefix + "(")
        elif closing:
            if depth == 0:
                raise InvalidFilter("a full-text search closes a parenthesis it did not open")
            depth -= 1
            if out and out[-1].endswith("("):
                out.pop()  # an empty group says nothing
            else:
                out.append(")")
        elif phrase is not None:
            words = _WORD.findall(phrase)
            if words:
                out.append(f'{prefix}"{" ".join(words)}"' + (f" @{int(distance)}" if distance else ""))
        elif word:
            out.append(prefix + word + ("*" if star else ""))
        prefix = ""
    if depth:
        raise InvalidFilter("a full-text search opens a parenthesis it does not close")
    return " ".join(out).replace("( ", "(").replace(" )", ")")
