"""Every file a comment or docstring names by its path exists, so a reader sent to one finds it.

A path here is folders and a file name with its suffix (`training/muon.py`, `bench/RESULTS.md`), read from the
comments and docstrings of every Python file of the project; it is looked up from the repository root, then
from the naming file's own folder (serve/page.py names its page's file by the folder beside it).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

from scratchgpt.core.paths import PACKAGE_DIR

PATH = re.compile(r"(?<![\w./-])((?:[A-Za-z_][\w-]*/)+[\w-]+\.(?:py|md|toml|sh|json|html))\b")


def comments_and_docstrings(source: str) -> list[tuple[int, str]]:
    """(line, text) of each comment and each module, class and function docstring in the source."""
    found = [
        (t.start[0], t.string)
        for t in tokenize.generate_tokens(io.StringIO(source).readline)
        if t.type == tokenize.COMMENT
    ]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                found.append((node.body[0].lineno, doc))
    return found


def named_paths(path: Path) -> list[tuple[int, str]]:
    return [
        (line, name)
        for line, text in comments_and_docstrings(path.read_text(encoding="utf-8"))
        for name in PATH.findall(text)
    ]


def project_files() -> list[Path]:
    def hidden(part: str) -> bool:
        return part.startswith(".") or part.endswith(".egg-info")

    return [f for f in sorted(PACKAGE_DIR.rglob("*.py")) if not any(map(hidden, f.relative_to(PACKAGE_DIR).parts))]


def test_the_scan_finds_the_paths_comments_name():
    source = '"""See training/muon.py."""\nx = "out/a.py"  # code, not a comment; the figure is in bench/RESULTS.md\n'
    found = sorted(n for _, t in comments_and_docstrings(source) for n in PATH.findall(t))
    assert found == ["bench/RESULTS.md", "training/muon.py"]
    assert len(project_files()) > 100


def test_every_path_a_comment_or_docstring_names_exists():
    missing = [
        f"{f.relative_to(PACKAGE_DIR)}:{line}: {name}"
        for f in project_files()
        for line, name in named_paths(f)
        if not (PACKAGE_DIR / name).exists() and not (f.parent / name).exists()
    ]
    assert not missing, "comments name files that are not there:\n" + "\n".join(missing)
