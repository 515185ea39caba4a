"""The suite's own output stays readable: torch's warnings about torch's code are filtered, precisely."""

from __future__ import annotations

import subprocess
import sys

from scratchgpt.core.paths import PACKAGE_DIR

PROBE = """
import warnings


def test_importing_what_torch_compile_imports():
    import torch.fx.experimental.optimization  # noqa: F401  (what --compile's inductor imports)


def test_another_deprecation_still_shows():
    warnings.warn("our own deprecation", DeprecationWarning)
"""


def test_torch_compiles_script_method_warnings_are_filtered_and_no_other(tmp_path):
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(probe),
            "-c",
            str(PACKAGE_DIR / "pyproject.toml"),
            "--rootdir",
            str(tmp_path),
            "-p",
            "no:cacheprovider",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "script_method" not in done.stdout and "our own deprecation" in done.stdout
