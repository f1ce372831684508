"""The engine's size, as the objective issue asks it reported: physical lines of cgfw/*.py (the
command line in cgfw/cli/ apart) and lines of code (no blank lines, comments or docstrings).

    python scripts/engine_lines.py
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}


def code_lines(path: Path) -> int:
    source = path.read_text(encoding="utf-8")
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = body[0] if body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in SKIP and token.type != tokenize.ENDMARKER:
            lines.update(n for n in range(token.start[0], token.end[0] + 1) if n not in docstrings)
    return len(lines)


for label, folder in (
    ("engine (cgfw/)", ROOT / "cgfw"),
    ("command line (cgfw/cli/)", ROOT / "cgfw" / "cli"),
):
    files = sorted(folder.glob("*.py"))
    physical = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in files)
    print(f"{label}: {len(files)} modules, {physical} lines, {sum(map(code_lines, files))} of code")
