"""Reading a model reply: the Python code in it, or a plain-text answer."""

from __future__ import annotations

import ast
import functools
import re

_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


@functools.lru_cache(maxsize=1024)
def extract_code(reply: str) -> str | None:
    """The code to run: fenced blocks joined, or the whole reply when it is plainly code.

    A bare reply counts as code when it parses and does something (a call, an assignment, an
    import, more than one statement); a lone word or sentence fragment is text.
    """
    blocks = _FENCE.findall(reply)
    if blocks:
        code = "\n".join(block.strip("\n") for block in blocks)
        return code if code.strip() else None
    text = reply.strip()
    if not text:
        return None
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    if len(tree.body) > 1:
        return text
    (stmt,) = tree.body
    if isinstance(stmt, ast.Expr) and not isinstance(stmt.value, ast.Call):
        return None
    return text
