"""model/gpt.py reads as the lesson: the parts in the order a learner meets them, every function short
enough to read at a glance, and the fast attention paths kept in model/attention_kernels.py."""

from __future__ import annotations

import ast
from pathlib import Path

import scratchgpt.model.gpt as gpt

SOURCE = ast.parse(Path(gpt.__file__).read_text(encoding="utf-8"))
LONGEST = 30  # lines of a function, its docstring included


def test_no_function_in_gpt_py_is_longer_than_a_glance():
    long = [(f.name, f.end_lineno - f.lineno + 1) for f in ast.walk(SOURCE) if isinstance(f, ast.FunctionDef)]
    assert [(name, n) for name, n in long if n > LONGEST] == []


def test_the_classes_come_in_the_order_of_the_lesson():
    classes = [node.name for node in SOURCE.body if isinstance(node, ast.ClassDef)]
    order = ["GPTConfig", "CausalSelfAttention", "MLP", "Block", "GPT", "Bigram"]
    assert [name for name in classes if name in order] == order


def test_attention_forward_holds_no_decode_or_cpu_special_case():
    forward = next(
        f
        for c in SOURCE.body
        if isinstance(c, ast.ClassDef) and c.name == "CausalSelfAttention"
        for f in c.body
        if isinstance(f, ast.FunctionDef) and f.name == "forward"
    )
    text = ast.unparse(forward)
    assert "isinstance" not in text and "is_compiling" not in text and "scaled_dot_product_attention" in text
