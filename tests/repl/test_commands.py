"""The command table: parsing, argument errors, suggestions, completion, the \"\"\" block."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchgpt.core.text import terminal_safe
from scratchgpt.model.sampling_settings import LENGTH
from scratchgpt.repl.commands import (
    COMMANDS,
    Invocation,
    is_command,
    lookup,
    parse,
)
from scratchgpt.repl.completion import complete
from scratchgpt.repl.keys import TripleQuoteBlock
from scratchgpt.tokenizers import TOKENIZER_NAMES

NAMES = sorted({n for c in COMMANDS for n in (c.name, *c.aliases)})


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(),
        st.builds(
            lambda n, sep, rest: f"/{n}{sep}{rest}",
            st.sampled_from(NAMES),
            st.sampled_from([" ", "  ", "\t", "\n"]),
            st.text(),
        ),
    )
)
def test_parse_never_raises_on_any_string(line):
    # any str, lone surrogates included: piped bytes that are not UTF-8 reach the prompt as such (surrogateescape)
    result = parse(line)
    assert isinstance(result, (Invocation, str))
    if isinstance(result, str):
        assert "\n" not in result and "\x1b" not in result


@pytest.mark.parametrize(
    "line, usage",
    [
        ("/len 1000000000", f"from 1 to {int(LENGTH.high)}"),
        ("/len 0", "from 1 to"),
        ("/len -5", "from 1 to"),
        ("/len abc", "whole number"),
        ("/len 5 6", "one argument"),
        ("/len ５", "whole number"),  # int() would take a full-width digit; plain ASCII numbers only
        ("/len 1_000", "whole number"),
        ("/temp nan", "finite"),
        ("/temp inf", "finite"),
        ("/temp -1", "from 0"),
        ("/temp 11", "to 10"),
        ("/temp ½", "expected a number"),
        ("/topk 0", "from 1"),
        ("/topk 2.5", "whole number"),
        ("/topp 0", "above 0"),
        ("/topp 1.5", "at most 1"),
        ("/seed -1", "from 0"),
        ("/train 0", "from 1 to 100000"),
        ("/train 100001", "from 1 to 100000"),
        ("/train lots", "whole number"),
        ("/train", "number of steps"),
        ("/tokenizer bep", "char, tiktoken, word, bpe"),
        ("/chat ROMEO", "two speakers"),
        ("/chat A B C", "two speakers"),
        ('/chat "ROMEO A', "unclosed quote"),
        ("/chat RO:MEO JULIET", "without ':'"),
        ("/load", "needs a path"),
        ("/show extra", "info or parameters"),
        ("/bye now", "no arguments"),
        ("/verbose maybe", "on or off"),
        ("/stop \\x", "broken escape"),
        ("/help nosuch", "no command"),
    ],
)
def test_bad_argument_gives_one_line_with_the_valid_form(line, usage):
    result = parse(line)
    assert isinstance(result, str)
    name = line.split()[0]
    assert usage in result
    assert f"Usage: /{lookup(name[1:]).name}" in result
    assert "\n" not in result


@pytest.mark.parametrize(
    "line, value",
    [
        ("/temp 0", 0.0),
        ("/temp", None),
        ("/len 7", 7),
        ("/topk off", "off"),
        ("/topp 0.9", 0.9),
        ("/seed 42", 42),
        ("/stop \\n\\n", "\n\n"),
        ("/train 3", (3, None)),
        ("/train 3 my corpus.txt", (3, "my corpus.txt")),
        ("/chat ROMEO JULIET", ("ROMEO", "JULIET")),
        ('/chat "LADY CAPULET" JULIET', ("LADY CAPULET", "JULIET")),
        ("/chat off", "off"),
        ("/save", (None, False)),
        ("/save my model.safetensors --force", ("my model.safetensors", True)),
        ("/load '/tmp/a b.safetensors'", "/tmp/a b.safetensors"),
        ("  /TEMP 1", 1.0),
    ],
)
def test_good_arguments_become_values(line, value):
    result = parse(line)
    assert isinstance(result, Invocation), result
    assert result.value == value


def test_aliases_reach_their_commands():
    assert parse("/?").command.name == "help"
    assert parse("/reset").command.name == "clear"
    assert parse("/exit").command.name == parse("/quit").command.name == "bye"


def test_unknown_command_suggests_the_closest():
    assert parse("/tmep 1") == "Unknown command '/tmep'. Type /? for help. Did you mean /temp?"
    assert parse("/zzzzzz") == "Unknown command '/zzzzzz'. Type /? for help."


def test_unknown_command_is_quoted_without_terminal_escapes():
    message = parse("/\x1b]0;pwned\x07x\x1b[31m")
    assert "\x1b" not in message and "\x07" not in message
    assert message.startswith("Unknown command '/]0;pwnedx[31m'")


def test_double_slash_is_text_not_a_command():
    assert is_command("/temp 0") and is_command("  /x")
    assert not is_command("//etc/passwd is a path") and not is_command("ROMEO: /temp")


def test_printable_keeps_newlines_and_tabs_only():
    assert terminal_safe("a\tb\nc\x1b[2J\x07\x9b\r\x7f") == "a\tb\nc[2J"


def test_tab_completes_command_names_from_the_table():
    got = [c.text for c in complete("/t")]
    assert got == ["/temp", "/threads", "/tokenizer", "/tokens", "/topk", "/topp", "/train"]
    assert all(c.start == -2 for c in complete("/t"))
    assert [c.text for c in complete("/e")] == ["/exit"]


def test_tab_completes_arguments():
    assert [c.text for c in complete("/tokenizer w")] == ["word"]
    assert {c.text for c in complete("/tokenizer ")} == set(TOKENIZER_NAMES)
    assert [c.text for c in complete("/help reg")] == ["regen"]
    assert [c.text for c in complete("/chat o")] == ["off"]
    assert [c.text for c in complete("/corpus tiny")][0] == "tinyshakespeare"
    assert complete("hello /t") == [] and complete("/show ") == []


def test_tab_completes_paths_for_load_save_corpus_and_train(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "models").mkdir()
    for line in (f"/load {tmp_path}/mo", f"/save {tmp_path}/mo", f"/corpus {tmp_path}/mo", f"/train 5 {tmp_path}/mo"):
        got = complete(line)
        assert sorted(c.text for c in got) == ["model.safetensors", "models/"], line
        assert all(c.start == -2 for c in got)


def test_help_lists_every_command_once():
    from scratchgpt.repl.commands import do_help

    said = []

    class Host:
        def say(self, text, *, style=None):
            said.append(text)

    do_help(Host(), None)
    for command in COMMANDS:
        assert said[0].count(f"  {command.signature} ") == 1, command.name


def test_triple_quotes_collect_a_block_across_prompts():
    block = TripleQuoteBlock()
    assert block.feed("plain line") == "plain line"
    assert block.feed('"""') is None and block.open
    assert block.feed("ROMEO:") is None
    assert block.feed("/temp 0") is None
    assert block.feed('"""') == "ROMEO:\n/temp 0\n"
    assert not block.open
    assert block.feed('"""one line"""') == "one line"
    assert block.feed('"""first') is None
    assert block.feed('last"""') == "first\nlast"


def test_a_misspelt_set_name_gets_a_suggestion():
    assert "cannot set 'temprature'; did you mean temperature?" in parse("/set temprature 1")
    assert "did you mean" not in parse("/set xyzzy 1")


def test_help_on_a_narrow_terminal_indents_the_lines_it_wraps():
    import io

    from rich.console import Console

    from scratchgpt.repl.commands import do_help, lookup

    said = []

    class Host:
        console = Console(file=io.StringIO(), force_terminal=True, width=60)

        def say(self, text, *, style=None):
            said.append(text)

    do_help(Host(), lookup("train"))
    lines = said[0].splitlines()
    assert len(lines) > 3 and all(len(line) <= 60 for line in lines)  # the details wrapped
    assert all(line.startswith("  ") for line in lines[1:])  # under their paragraph, not at the margin


def test_another_of_ollamas_settings_is_not_taken_for_a_typo():
    assert "did you mean" not in parse("/set num_ctx 4096")
