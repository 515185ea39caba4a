"""The REPL driven through the real prompt_toolkit application: keystrokes in through a pipe,
prompt rendering to DummyOutput, and what the rich console printed captured in a StringIO."""

from __future__ import annotations

import io

import pytest
import torch

from scratchgpt.cli.console import make_console
from scratchgpt.model.checkpoint import Checkpoint, load_checkpoint, shipped_checkpoint
from scratchgpt.model.gpt import GPTConfig, build_model
from scratchgpt.repl import session as session_module
from scratchgpt.repl.session import Session, Settings
from scratchgpt.tokenizers import fit_tokenizer

CTRL_C, CTRL_D, ESC_ENTER = "\x03", "\x04", "\x1b\r"


def test_typed_text_is_continued_and_followed_by_a_stats_line(drive):
    d = drive("ROMEO:\r")
    assert d.code == 0
    reply = d.session.last_reply
    assert len(reply.text) > 0 and reply.text in d.out
    assert "20 tokens · " in d.out and "tokens/s · temp 0.8 · seed 1" in d.out


def test_ctrl_d_exits_with_code_0(drive):
    d = drive(CTRL_D)
    assert d.code == 0 and d.session.turn == 0


@pytest.mark.parametrize("command", ["/bye", "/exit", "/quit"])
def test_bye_exit_and_quit_end_the_session_with_code_0(drive, command):
    d = drive(f"{command}\r", "ROMEO:\r")
    assert d.code == 0 and d.session.turn == 0  # nothing after the command ran


def test_ctrl_c_on_an_empty_prompt_says_how_to_leave_and_goes_on(drive):
    d = drive(CTRL_C, "/temp 0\r")
    assert "Use Ctrl-D or /bye to exit." in d.out
    assert d.session.settings.temperature == 0


def test_ctrl_c_with_text_typed_discards_the_line(drive):
    d = drive("half a thought" + CTRL_C, "/len\r")
    assert d.session.turn == 0 and "Use Ctrl-D" not in d.out
    assert "length is 20 tokens" in d.out


def test_context_accumulates_across_turns(drive):
    d = drive("ROMEO:\r", "\rJULIET:\r")
    tok = d.session.tokenizer
    text = tok.decode(d.session.conversation.ids)
    assert text.startswith("ROMEO:") and "JULIET:" in text
    assert d.session.turn == 3  # an empty line continued the conversation


def test_esc_enter_inserts_a_newline(drive):
    d = drive("ROMEO:" + ESC_ENTER + "Ay" + "\r")
    assert d.session.tokenizer.decode(d.session.last_reply.context) == "ROMEO:\nAy"


def test_bracketed_paste_keeps_newlines(drive):
    d = drive("\x1b[200~ROMEO:\nWhat light\x1b[201~\r")
    assert d.session.tokenizer.decode(d.session.last_reply.context) == "ROMEO:\nWhat light"


def test_triple_quotes_collect_lines_as_text_even_if_they_look_like_commands(drive):
    d = drive('"""\r', "ROMEO:\r", "/temp 0\r", '"""\r')
    assert d.session.tokenizer.decode(d.session.last_reply.context) == "ROMEO:\n/temp 0\n"
    assert d.session.settings.temperature == 0.8 and d.session.turn == 1


def test_ctrl_c_inside_a_triple_quote_block_discards_it(drive):
    d = drive('"""\r', "ROMEO:\r", CTRL_C, "/len\r")
    assert "multi-line input discarded" in d.out and d.session.turn == 0


def test_double_slash_sends_text_starting_with_a_slash(drive):
    d = drive("//temp 0\r")
    assert d.session.tokenizer.decode(d.session.last_reply.context) == "/temp 0"
    assert d.session.settings.temperature == 0.8


def test_help_lists_commands_and_help_cmd_explains_one(drive):
    d = drive("/help\r", "/?\r", "/help train\r")
    assert d.out.count("/tokenizer [char|tiktoken|word|bpe]") == 2
    assert "Ctrl-C stops early and keeps the steps done" in d.out


def test_setting_commands_show_without_an_argument_and_confirm_with_one(drive):
    d = drive(
        "/temp\r",
        "/temp 0\r",
        "/len\r",
        "/len 7\r",
        "/topk\r",
        "/topk 5\r",
        "/topp\r",
        "/topp 0.9\r",
        "/seed\r",
        "/seed 42\r",
        "/stop\r",
        "/stop \\n\\n\r",
        "/verbose\r",
    )
    s = d.session.settings
    assert (s.temperature, s.max_new_tokens, s.top_k, s.top_p, s.seed, s.stop, s.verbose) == (
        0,
        7,
        5,
        0.9,
        42,
        ["\n\n"],
        True,
    )
    expected = [
        "temperature is 0.8",
        "temperature set to 0 (greedy)",
        "length is 20 tokens",
        "length set to 7 tokens",
        "top-k is off",
        "top-k set to 5",
        "top-p is off",
        "top-p set to 0.9",
        "seed is 1",
        "seed set to 42",
        "stop strings: none",
        "stop strings now: '\\n\\n'",
        "verbose on",
    ]
    for line in expected:
        assert line in d.out


def test_off_resets_topk_topp_and_stop(drive):
    d = drive("/topk 5\r", "/topp 0.5\r", "/stop END\r", "/topk off\r", "/topp off\r", "/stop off\r")
    s = d.session.settings
    assert (s.top_k, s.top_p, s.stop) == (None, None, [])


def test_sampling_settings_reach_the_reply(drive):
    d = drive("/temp 0\r", "/len 5\r", "ROMEO:\r", "/seed 99\r", "/clear\r", "ROMEO:\r")
    second = d.session.last_reply
    assert second.tokens == 5 and d.out.count(second.text + "\n5 tokens · ") == 2  # greedy: the same five again
    assert "5 tokens · " in d.out and "temp 0 · seed 99" in d.out


def test_bad_arguments_print_one_line_and_the_session_goes_on(drive):
    d = drive("/len 1000000000\r", "/temp nan\r", "/train -1\r", "/topp 2\r", "/tokenizer klingon\r", "/len 3\r")
    assert "/len must be from 1 to 100000, got '1000000000'. Usage: /len [N]" in d.out
    assert "/temp expected a finite number, got 'nan'. Usage: /temp [T]" in d.out
    assert "Usage: /train N [CORPUS]" in d.out and "Usage: /topp [P|off]" in d.out
    assert "Usage: /tokenizer [char|tiktoken|word|bpe]" in d.out
    assert d.session.settings.max_new_tokens == 3


def test_unknown_command_is_named_with_the_closest_one(drive):
    d = drive("/tmep 0\r", "/qwxz\r")
    assert "Unknown command '/tmep'. Type /? for help. Did you mean /temp?" in d.out
    assert "Unknown command '/qwxz'. Type /? for help.\n" in d.out


def test_escape_sequences_pasted_are_not_echoed_raw(drive):
    d = drive("\x1b[200~/\x1b[2Jx\x1b[201~\r", "\x1b[200~/len \x1b]0;title\x07\x1b[201~\r")
    assert "\x1b" not in d.out and "\x07" not in d.out
    assert "Unknown command '/[2Jx'" in d.out
    assert "/len expected a whole number, got ']0;title'" in d.out


def test_a_key_sequence_the_prompt_cannot_parse_does_not_end_the_session(drive):
    d = drive("\x1b[31m", "/len 3\r")  # prompt_toolkit takes this for a malformed mouse event
    assert d.session.settings.max_new_tokens == 3


def test_clear_and_reset_empty_the_context(drive):
    d = drive("ROMEO:\r", "/clear\r", "JULIET:\r", "/reset\r")
    assert d.session.conversation.ids == [] and d.out.count("conversation cleared (settings kept)") == 2


def test_regen_replaces_the_last_reply(drive):
    d = drive("ROMEO:\r", "/regen\r")
    tok, last = d.session.tokenizer, d.session.last_reply
    assert tok.decode(last.context) == "ROMEO:" and d.session.turn == 2
    assert tok.decode(d.session.conversation.ids) == "ROMEO:" + last.text
    assert d.out.count(" tokens/s · ") == 2


def test_regen_before_any_reply_says_so(drive):
    d = drive("/regen\r")
    assert "error: nothing to regenerate yet; type a prompt first" in d.out


def test_show_and_stats_print_the_model_and_settings(drive):
    d = drive("ROMEO:\r", "/show\r", "/stats\r")
    vocabulary = f"vocabulary   char, {d.session.tokenizer.vocab_size} tokens"
    rows = [
        "checkpoint",
        "parameters",
        vocabulary,
        "context      32 tokens",
        "device",
        "corpus",
        "val loss     4.0000, estimated while training",
        "temperature  0.8",
        "seed         1",
        "turns",
        "last reply",
    ]
    for row in rows:
        assert row in d.out


def test_chat_frames_lines_and_prints_the_speaker(drive):
    d = drive("/chat ROMEO JULIET\r", "Good morrow.\r", "/chat\r", "/chat off\r", "plain\r")
    assert "chat on: you speak as ROMEO, the model answers as JULIET" in d.out
    assert "JULIET:\n" in d.out and "chat: ROMEO speaks to JULIET" in d.out
    text = d.session.tokenizer.decode(d.session.conversation.ids)
    assert text.startswith("ROMEO:\nGood morrow.\n\nJULIET:\n") and d.session.chat is None
    assert d.session.tokenizer.decode(d.session.last_reply.context).endswith("plain")


def test_tokenizer_switch_to_word_makes_a_fresh_model_and_re_encodes_the_context(drive, monkeypatch):
    monkeypatch.setattr(session_module, "shipped_checkpoint", lambda name: None)
    d = drive("First Citizen:\r", "/tokenizer\r", "/tokenizer word\r", "/tokenizer\r", " and\r")
    assert "vocabulary: char, 69 tokens" in d.out
    assert "word vocabulary: a fresh model" in d.out and "untrained — /train N to train it" in d.out
    tok = d.session.tokenizer
    assert tok.name == "word" and f"vocabulary: word, {tok.vocab_size:,} tokens" in d.out
    assert tok.decode(d.session.last_reply.context).startswith("First Citizen:")  # words the corpus has


def test_train_reports_losses_before_and_after_and_changes_weights(drive, session):
    weights = {k: v.clone() for k, v in session.ckpt.model.state_dict().items()}
    d = drive("/train 3\r", "ROMEO:\r")
    assert "trained 3 steps on tiny-shakespeare" in d.out
    assert "train " in d.out and " → " in d.out and ", val " in d.out
    assert "loss per step " in d.out
    assert "the weights changed in memory only; /save writes them" in d.out
    assert "step 3/3" in d.out  # the progress, as plain lines when the console is not a terminal
    now = session.ckpt.model.state_dict()
    assert any(not torch.equal(weights[k], now[k]) for k in weights)
    assert session.turn == 1  # the session went on after training


def test_train_on_a_named_corpus_and_corpus_command(drive, tmp_path, shakespeare_text):
    other = tmp_path / "other.txt"
    other.write_text(shakespeare_text[-8000:], encoding="utf-8")
    d = drive("/corpus\r", f"/corpus {other}\r", "/train 2\r", f"/corpus {tmp_path}/missing.txt\r")
    assert "corpus set to other (8,000 bytes)" in d.out
    assert "trained 2 steps on other" in d.out
    assert "error: corpus" in d.out and "missing.txt" in d.out  # a bad corpus: one line, the session goes on
    assert d.session.corpus == str(other)


def test_save_then_load_gives_the_same_next_tokens_at_temp_0(drive, tmp_path, tiny_checkpoint):
    path = tmp_path / "saved.safetensors"
    d = drive("/temp 0\r", "/train 2\r", f"/save {path}\r", "/clear\r", "ROMEO:\r")
    assert f"saved {path}" in d.out
    expected = d.session.last_reply.text
    other = Session(load_checkpoint(tiny_checkpoint), settings=Settings(seed=5, max_new_tokens=20))
    d2 = drive("/temp 0\r", f"/load {path}\r", "ROMEO:\r", session_=other)
    assert f"loaded {path}" in d2.out
    assert d2.session.last_reply.text == expected


def test_save_without_a_path_prints_where_it_went(drive):
    from scratchgpt.core.paths import user_checkpoint_dir

    d = drive("/save\r")
    (saved,) = user_checkpoint_dir().iterdir()
    assert f"saved {saved}" in d.out


def test_load_of_a_bad_file_prints_one_line_and_keeps_the_session(drive, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 100)
    d = drive(f"/load {bad}\r", "/load\r", "ROMEO:\r")
    errors = [line for line in d.out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(bad) in errors[0]
    assert "Usage: /load PATH" in d.out and d.session.turn == 1


def bigram_session(text: str, prompt_char: str) -> Session:
    """A char bigram model that, greedy, cycles through text: each character's successor is certain."""
    tokenizer = fit_tokenizer("char", [text])
    model = build_model(GPTConfig(vocab_size=tokenizer.vocab_size, arch="bigram"))
    with torch.no_grad():
        model.table.weight.fill_(-10.0)
        for a, b in zip(text, text[1:] + text[0], strict=True):
            model.table.weight[tokenizer.encode(a)[0], tokenizer.encode(b)[0]] = 10.0
    return Session(Checkpoint(model=model, tokenizer=tokenizer), settings=Settings(temperature=0, max_new_tokens=13))


def test_model_output_is_printed_literally_never_as_markup(drive):
    d = drive("[\r", session_=bigram_session("[bold]", "["))
    assert d.session.last_reply.text == "bold][bold][b"
    assert "bold][bold][b" in d.out


def test_control_characters_the_model_samples_are_not_printed(drive):
    d = drive("a\r", session_=bigram_session("ab\x1b[2J", "a"))
    assert "\x1b" in d.session.last_reply.text
    assert "\x1b" not in d.out and "b[2Jab[2J" in d.out


def test_no_color_means_no_ansi_codes_even_on_a_terminal(monkeypatch):
    buffer = io.StringIO()
    monkeypatch.setenv("NO_COLOR", "1")
    make_console(buffer, force_terminal=True).print("stats", style="dim")
    assert buffer.getvalue() == "stats\n"
    monkeypatch.delenv("NO_COLOR")
    colored = io.StringIO()
    make_console(colored, force_terminal=True).print("stats", style="dim")
    assert "\x1b[" in colored.getvalue()  # the check above can fail


def test_ctrl_c_while_generating_keeps_the_printed_text_and_returns_to_the_prompt(drive, session, monkeypatch):
    last_mlp = session.ckpt.model.blocks[-1].mlp  # every pass goes through it: prefill and each decode step
    forward, calls = last_mlp.forward, []

    def interrupted_forward(*args, **kwargs):  # Ctrl-C arriving inside the model, as it mostly does
        calls.append(1)
        if len(calls) == 12:
            raise KeyboardInterrupt
        return forward(*args, **kwargs)

    monkeypatch.setattr(last_mlp, "forward", interrupted_forward)
    session.settings.max_new_tokens = 30
    d = drive("ROMEO:\r", "/len 3\r")
    reply = session.last_reply
    assert reply.interrupted and 0 < reply.tokens < 30
    assert "stopped" in d.out and reply.text in d.out
    assert session.tokenizer.decode(session.conversation.ids) == "ROMEO:" + reply.text
    assert session.settings.max_new_tokens == 3  # back at the prompt


def test_the_prompt_completes_from_the_command_table(drive):
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    completer = drive(CTRL_D).repl.prompt_session.completer

    def texts(line: str) -> list[str]:
        return [c.text for c in completer.get_completions(Document(line), CompleteEvent(completion_requested=True))]

    assert texts("/le") == ["/len", "/lens"]
    assert texts("/tokenizer ti") == ["tiktoken"]
    assert texts("hello") == []


def test_the_repl_imports_what_train_needs_in_the_background_at_start(drive, monkeypatch):
    import threading
    import types

    from scratchgpt.repl import app

    imported = []
    monkeypatch.setattr(app, "importlib", types.SimpleNamespace(import_module=imported.append))
    d = drive("\x04")
    for thread in threading.enumerate():
        if thread.name == "scratchgpt-warm-up":
            thread.join()
    assert d.code == 0 and imported == ["torch._dynamo"]  # the optimizer's first use imports it (~2 s)


def test_threads_command_sets_shows_and_measures_the_decode_threads(drive, monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        d = drive("/threads 1\r", "/threads\r", "ROMEO:\r", "/threads 0\r", "/threads auto\r")
        assert "threads set to 1 thread (chosen with --threads or /threads)" in d.out
        assert "threads: 1 thread (chosen with --threads or /threads)" in d.out
        assert "/threads must be from 1 to" in d.out and "Usage: /threads [N|auto]" in d.out
        assert "threads set to " in d.out.split("/threads [N|auto]")[-1]  # auto: measured, or the environment's
        assert d.session.requested_threads is None and d.session.last_reply.tokens == 20
    finally:
        torch.set_num_threads(before)


def test_repl_threads_flag_reaches_the_session(monkeypatch, capsys, tiny_checkpoint):
    import io
    import sys

    import torch

    from scratchgpt.repl import app, piped

    before = torch.get_num_threads()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"ROMEO:"), encoding="utf-8"))
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    made = []
    monkeypatch.setattr(piped, "run_once", lambda session, prompt, **kw: made.append(session) or 0)
    try:
        assert app.main(["--checkpoint", str(tiny_checkpoint), "--threads", "1"]) == 0
        (session,) = made
        assert session.threads.count == 1 == torch.get_num_threads() and session.threads.fixed
        assert ("threads", "1 thread (chosen with --threads or /threads)") in session.show()
    finally:
        torch.set_num_threads(before)


def test_ollama_spellings_set_our_settings(drive):
    d = drive(
        "/set parameter temperature 0.7\r",
        "/set num_predict 5\r",
        "/set parameter top_k 3\r",
        "/set top_p 0.9\r",
        "/set parameter seed 7\r",
        '/set parameter stop "END"\r',
        "/set verbose\r",
        "ROMEO:\r",
        "/set quiet\r",
    )
    s = d.session.settings
    assert (s.temperature, s.max_new_tokens, s.top_k, s.top_p, s.seed, s.stop) == (0.7, 5, 3, 0.9, 7, ["END"])
    assert "temperature set to 0.7" in d.out and "length set to 5 tokens" in d.out and "verbose on" in d.out
    assert d.session.last_reply.tokens <= 5 and not s.verbose  # /set quiet turned it off again


def test_ollama_set_refuses_what_it_cannot_set_in_one_line_and_help_lists_set(drive):
    d = drive("/set parameter num_ctx 4096\r", "/set parameter temperature 99\r", "/set\r", "/help\r")
    assert "/set cannot set 'num_ctx'; it sets temperature, num_predict" in d.out
    assert "/set temperature must be from 0 to 10 (0 = greedy), got '99'" in d.out
    assert "/set needs a setting and a value" in d.out
    assert d.session.settings.temperature == 0.8
    assert "/set [parameter] NAME VALUE" in d.out and "/temp [T]" in d.out  # /help lists ours and ollama's


def test_show_info_and_parameters_show_each_half(drive):
    d = drive("/show info\r")  # rows are "  NAME  VALUE"
    assert "\n  parameters " in d.out and "\n  vocabulary " in d.out and "\n  temperature " not in d.out
    d = drive("/show parameters\r")
    assert "\n  temperature " in d.out and "\n  threads " in d.out and "\n  vocabulary " not in d.out
    d = drive("/show license\r")
    assert "/show shows info or parameters" in d.out


def test_ollama_multiline_clear_and_bye_work_as_there(drive):
    d = drive('"""ROMEO:\r', 'JULIET:"""\r', "/clear\r", "/bye\r")
    assert d.code == 0 and "conversation cleared (settings kept)" in d.out and d.session.conversation.ids == []
    assert d.session.turn == 1  # the block was one prompt


def test_a_missing_or_foreign_corpus_at_the_prompt_names_repl_commands_not_flags(drive, tmp_path, monkeypatch):
    import urllib.request

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setenv("SCRATCHGPT_DATA", str(tmp_path / "empty"))
    d = drive("/train 1 tinyshakespeare\r")
    assert "could not be downloaded" in d.out and "/train N PATH or /corpus PATH" in d.out
    foreign = tmp_path / "data"
    foreign.mkdir()
    (foreign / "tinyshakespeare.txt").write_text("not Shakespeare\n")
    monkeypatch.setenv("SCRATCHGPT_DATA", str(foreign))
    d = drive("/corpus tinyshakespeare\r")
    assert f"/corpus {foreign / 'tinyshakespeare.txt'} trains on it as your own text" in d.out
    assert "--corpus" not in d.out


def test_ctrl_d_after_train_asks_first_and_cancel_goes_on_to_save(drive, tmp_path):
    path = tmp_path / "kept.safetensors"
    d = drive("/train 1\r", CTRL_D, "c\r", f"/save {path}\r", CTRL_D, "/len 3\r")
    assert d.code == 0 and f"saved {path}" in d.out
    assert "length set" not in d.out  # once saved, Ctrl-D leaves without asking


def test_bye_after_train_saves_where_the_answer_says(drive, tmp_path):
    path = tmp_path / "answer.safetensors"
    d = drive("/train 1\r", "/bye\r", f"save {path}\r", "/len 3\r")
    assert d.code == 0 and f"saved {path}" in d.out and load_checkpoint(path).provenance["step"] >= 0
    assert "length set" not in d.out


@pytest.mark.parametrize("answer", ["d\r", "discard\r", CTRL_D])
def test_discard_or_a_second_ctrl_d_leaves_without_saving(drive, answer):
    d = drive("/train 1\r", CTRL_D, answer, "/len 3\r")
    assert d.code == 0 and "saved" not in d.out and "length set" not in d.out


def test_an_answer_that_is_no_choice_asks_again(drive):
    d = drive("/train 1\r", CTRL_D, "maybe\r", "c\r", "/len 3\r")
    assert "'maybe': answer save [PATH], discard or cancel" in d.out and "length set to 3" in d.out


@pytest.mark.parametrize("command", ["/tokenizer word", "/load {shipped}"])
def test_another_model_over_unsaved_train_weights_asks_first(drive, command):
    command = command.format(shipped=shipped_checkpoint("char"))
    d = drive("/train 1\r", command + "\r", "c\r", "/stats\r", command + "\r", "d\r", "/stats\r", "/bye\r")
    cancelled, discarded = d.out.split("steps trained")[1:3]  # the question itself goes to the prompt's line
    assert cancelled.lstrip().startswith("1 (unsaved)")  # cancel kept the trained weights in use
    assert discarded.lstrip().startswith("0") and d.code == 0  # discard let the other model in; /bye then leaves
    assert d.out.count("loaded " if command.startswith("/load") else "word vocabulary: the shipped model") == 1


def test_a_bare_quit_goes_to_the_model_then_a_hint_says_commands_start_with_a_slash_once(drive):
    d = drive("quit\r", "exit\r", "ROMEO:\r")
    assert d.session.turn == 3 and d.code == 0  # each went to the model as text
    assert d.out.count("commands start with /") == 1 and "('quit' went to the model as text" in d.out


def test_verbose_regen_counts_the_whole_prompt_and_says_what_the_cache_held(drive):
    d = drive("/verbose on\r", "ROMEO:\r", "/regen\r")
    assert "prompt 6 tokens · " in d.out and "prompt 6 tokens (5 cached) · " in d.out
    assert "prompt 1 tokens" not in d.out


def test_save_says_which_folder_it_made_and_into_a_folder_keeps_the_models_name(drive, tmp_path):
    new = tmp_path / "new" / "dir" / "x.safetensors"
    out = tmp_path / "out"
    out.mkdir()
    d = drive(f"/save {new}\r", f"/save {out}\r", f"/save {out}\r")
    assert f"saved {new} (made the folder {tmp_path / 'new'})" in d.out
    assert f"saved {out / 'x.safetensors'}\n" in d.out  # the model's name, no timestamp while it is free
    assert len(list(out.glob("x+*.safetensors"))) == 1  # taken: a timestamp, never a replacement


def test_train_on_too_short_a_text_advises_in_the_repls_terms_not_a_flag_it_does_not_take(drive, tmp_path):
    short = tmp_path / "french.txt"
    short.write_text("Bonjour.\nAu revoir.\n", encoding="utf-8")  # far fewer tokens than one block of 32
    d = drive(f"/train 2 {short}\r")
    assert "too short" in d.out and "/train needs a longer corpus (it reads 32-token windows)" in d.out
    assert "--block-size" not in d.out and d.session.steps_trained == 0
