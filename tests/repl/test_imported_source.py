"""scratchgpt-repl SRC with a Hugging Face GPT-2 folder: imported in memory, said so once, and it talks."""

from __future__ import annotations

import torch

from scratchgpt.repl.app import build_parser, open_session


def test_the_repl_opens_a_hf_gpt2_folder_saying_it_imported_it(make_hf_gpt2):
    hf, folder = make_hf_gpt2("gpt2")
    session, note = open_session(build_parser().parse_args([str(folder), "--temp", "0", "--len", "6"]))
    assert note.startswith(f"imported {folder} (Hugging Face GPT-2") and "\n" not in note
    reply = "".join(session.reply("The quick"))
    ids = torch.tensor([session.tokenizer.encode("The quick")])
    greedy = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False, pad_token_id=0)
    assert reply == session.tokenizer.decode(greedy[0, ids.shape[1] :].tolist())
