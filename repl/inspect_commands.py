"""The REPL's views of the inside of the model: /probs, /why, /tokens, /score, /attention, /lens.

Handlers for commands.py's table (their argument converters are arguments.py's). They read
what the engine recorded while the last reply streamed (each token's distribution, kept as the decode
step left it) or run one explicit forward over the text asked about; the layout is inspect_view.py's,
shared with the command line.
"""

from __future__ import annotations

from ..core.errors import ScratchGPTError
from ..core.text import counted
from .command_types import Host


def do_probs(host: Host, value: bool | None) -> None:
    from ..cli.inspect_view import legend

    s = host.session.settings
    s.probs = (not s.probs) if value is None else value
    on = "on: each new token is shaded by the probability the model gave it"
    host.say(f"probabilities {on if s.probs else 'off'}")
    if s.probs:
        host.console.print(legend())


def do_why(host: Host, position: int | None) -> None:
    from ..cli.inspect_view import shown_token, why_lines

    reply = host.session.last_reply
    records = reply.completion.logits if reply is not None else []
    if not records:
        raise ScratchGPTError("no reply to explain yet; type a prompt, then /why [N] for its N-th token")
    n = len(records)
    position = -1 if position is None else position
    if not (1 <= position <= n or -n <= position <= -1):
        raise ScratchGPTError(
            f"the last reply has {counted(n, 'token')}; /why takes 1 to {n}, or -1 to -{n} counting from the end"
        )
    index = position - 1 if position > 0 else n + position
    chosen = reply.completion.ids[index]
    tokenizer = host.session.tokenizer
    host.say(
        f"token {index + 1} of {n}: {shown_token(tokenizer, chosen)}; the model's own probabilities "
        "(temperature 1) beside the ones this session sampled from"
    )
    host.say("\n".join(why_lines(tokenizer, records[index], chosen, reply.settings)))


def do_tokens(host: Host, text: str) -> None:
    from ..cli.tokenizer import split_view

    host.console.print(split_view(host.session.tokenizer, text, color=host.console.color_system is not None))


def do_score(host: Host, text: str) -> None:
    from ..cli.inspect_view import legend, score_summary, score_text_shaded
    from ..model.inspection import score_text

    session = host.session
    result = score_text(session.ckpt.model, session.tokenizer, text, top=3)
    host.console.print(score_text_shaded(result))
    host.console.print(legend())
    host.say("\n".join(score_summary(session.tokenizer, result)))


def _looked_at(host: Host) -> list[int]:
    """The conversation's last window: what the next reply would attend over."""
    session = host.session
    ids = session.conversation.ids[-session.block_size :]
    if not ids:
        raise ScratchGPTError("nothing to look at yet; type a prompt first (the views read the conversation)")
    return ids


def do_attention(host: Host, layer: int | None) -> None:
    from ..cli.inspect_view import attention_lines
    from ..model.inspection import layers_to_show, look_inside

    model = host.session.ckpt.model
    layers = layers_to_show(model, layer)
    ids = _looked_at(host)
    attention, _ = look_inside(model, ids)
    host.say("\n".join(attention_lines(host.session.tokenizer, ids, attention[:, :, -1, :], layers)))


def do_lens(host: Host, _: None) -> None:
    from ..cli.inspect_view import lens_lines
    from ..model.inspection import layers_to_show, look_inside

    model = host.session.ckpt.model
    layers_to_show(model, None)  # raises for the bigram: it has no layers to look through
    _, lens = look_inside(model, _looked_at(host))
    host.say("\n".join(lens_lines(host.session.tokenizer, lens)))
