"""One definition of the sampling settings: the dataclass, the flags of `sample` and `scratchgpt-repl`
and the REPL's commands take and refuse the same values, and sampling lives outside the engine."""

from __future__ import annotations

import subprocess
import sys

import pytest

from scratchgpt.cli.flags import sampling_settings
from scratchgpt.cli.sample import sample_parser
from scratchgpt.core.errors import ScratchGPTError
from scratchgpt.model.sampling_settings import BOUNDS, SamplingSettings
from scratchgpt.repl import app
from scratchgpt.repl.commands import Invocation, parse

# (setting, its sample/repl flag, its slash command, values to try): every value is taken by all
# three or refused by all three
SETTINGS = [
    ("temperature", "--temp", "/temp", ["0", "1e-7", "1e-6", "0.8", "10", "10.5", "-1", "nan"]),
    ("max_new_tokens", "--len", "/len", ["1", "100000", "0", "100001", "2.5"]),
    ("top_k", "--top-k", "/topk", ["1", "1000000", "0", "1000001"]),
    ("top_p", "--top-p", "/topp", ["1e-9", "0.5", "1", "0", "1.01"]),
    ("seed", "--seed", "/seed", ["0", str(2**32 - 1), str(2**32), "-1"]),
]


def flag_value(parser, flag: str, text: str):
    try:
        return getattr(parser.parse_args([f"{flag}={text}"]), flag.removeprefix("--").replace("-", "_"))
    except SystemExit:
        return "refused"


def command_value(command: str, text: str):
    parsed = parse(f"{command} {text}")
    return parsed.value if isinstance(parsed, Invocation) else "refused"


def dataclass_value(name: str, value):
    try:
        setattr(SamplingSettings(), name, value)
    except ScratchGPTError:
        return "refused"
    return value


@pytest.mark.parametrize("name, flag, command, values", SETTINGS, ids=[s[0] for s in SETTINGS])
def test_flags_commands_and_the_dataclass_take_and_refuse_the_same_values(name, flag, command, values, capsys):
    for text in values:
        via_sample = flag_value(sample_parser(), flag, text)
        via_repl = flag_value(app.build_parser(), flag, text)
        via_command = command_value(command, text)
        assert via_sample == via_repl == via_command, (text, via_sample, via_repl, via_command)
        if via_sample != "refused":
            assert dataclass_value(name, via_sample) == via_sample
    assert {name for name, *_ in SETTINGS} == set(BOUNDS)
    capsys.readouterr()


def test_a_temperature_below_the_greedy_threshold_is_taken_everywhere_and_samples_greedily():
    import torch

    from scratchgpt.model.sampling import sample_next

    logits = torch.tensor([[0.1, 2.0, 1.9, -3.0]])
    g = torch.Generator().manual_seed(0)
    assert all(int(sample_next(logits, temperature=1e-7, generator=g)) == 1 for _ in range(50))
    assert command_value("/temp", "1e-7") == 1e-7 == flag_value(sample_parser(), "--temp", "1e-7")


def test_the_dataclass_refuses_values_out_of_bounds_whoever_assigns_them():
    s = SamplingSettings(seed=1)
    for name, value in [("temperature", 11.0), ("max_new_tokens", 0), ("top_k", 2.5), ("seed", -1), ("top_p", 0.0)]:
        with pytest.raises(ScratchGPTError, match=name):
            setattr(s, name, value)
    with pytest.raises(ScratchGPTError, match="max_new_tokens"):
        SamplingSettings(max_new_tokens=10**6)
    assert (s.temperature, s.max_new_tokens, s.top_k, s.top_p) == (0.8, 500, None, None)  # nothing changed


ALIKE = [
    *"-p ROMEO: -n 7 --tokenizer char --temp 0.5 --top-k 3 --top-p 0.9 --seed 4 --stop".split(),
    r"\n\n",
    "--stop",
    "END",
]


def test_sample_and_the_repl_spell_their_flags_alike_and_build_the_same_settings():
    ours, repl = sample_parser().parse_args(ALIKE), app.build_parser().parse_args(ALIKE)
    assert ours.prompt == repl.prompt == "ROMEO:" and ours.tokenizer == repl.tokenizer == "char"
    assert (
        sampling_settings(ours)
        == sampling_settings(repl)
        == SamplingSettings(temperature=0.5, max_new_tokens=7, top_k=3, top_p=0.9, seed=4, stop=["\n\n", "END"])
    )


@pytest.mark.parametrize("argv", [["scratchgpt", "sample", "--version"], ["scratchgpt-repl", "--version"]])
def test_version_is_printed_by_sample_and_the_repl(argv):
    from scratchgpt import __version__

    module = "scratchgpt.repl.app" if argv[0] == "scratchgpt-repl" else "scratchgpt"
    proc = subprocess.run([sys.executable, "-m", module, *argv[1:]], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == f"scratchgpt {__version__}\n", proc.stderr


def test_the_model_samples_without_importing_the_engine():
    # gpt.py used to import engine.py for sample_next, and engine.py imports gpt.py: a circle
    code = (
        "import sys, torch; from scratchgpt.model.gpt import GPTConfig, build_model; "
        "m = build_model(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4)); "
        "m.generate(torch.zeros((1, 1), dtype=torch.long), 3, temperature=1.0); "
        "print('scratchgpt.model.engine' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "False\n", proc.stderr
