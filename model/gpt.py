"""The whole network in one file: config, attention, MLP, block, GPT, and the bigram baseline.

Shapes use B = batch, T = time (tokens), C = n_embd, nh = n_head, hs = head size, V = vocab.
Both models share one interface, `forward(idx, targets=None, *, kv_cache=None, last_only=False)`,
so the engine, the trainer and `scratchgpt eval` treat them alike.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.errors import ScratchGPTError
from .attention_kernels import cpu_bf16_training, decode_attention, with_cache
from .sampling import sample_next

ACTIVATIONS = ("relu2", "gelu", "gelu_tanh")
# What GPT-2 (and nanoGPT) do where ours differs: learned positions, no query/key norm, biases in
# every Linear and LayerNorm, tanh GELU, and the LM head tied to the token embedding. `train --arch
# gpt2` trains this layout from scratch; `scratchgpt import` builds it, and `export --format hf` needs it.
GPT2_LAYOUT = dict(rope=False, qk_norm=False, bias=True, norm_bias=True, activation="gelu_tanh", tie_embeddings=True)


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int  # tokens in the vocabulary (rows of the embedding and of the LM head)
    block_size: int = 256  # longest context the model attends over
    n_layer: int = 6  # transformer blocks
    n_head: int = 6  # attention heads per block; n_embd must divide evenly
    n_embd: int = 384  # width of the residual stream
    dropout: float = 0.0  # on residual branches (and attention weights, unless attn_dropout), training only
    # on the attention weights; None = dropout. On the CPU, any > 0 takes SDPA off its flash kernel
    # onto one that builds every T x T weight: 1.5-1.75x the step time at 512 context (bench/attn_dropout.py).
    attn_dropout: float | None = None
    bias: bool = False  # biases in Linear layers (nanoGPT: False is a little better and faster)
    norm_bias: bool = False  # biases in the LayerNorms too, as GPT-2 (and nanoGPT with bias=True) has them
    arch: str = "gpt"  # "gpt" or "bigram" (the baseline: a V x V logit table)
    rope: bool = True  # rotary position embeddings; False = learned absolute positions
    qk_norm: bool = True  # normalise queries and keys before attention (stabler at high lr)
    # MLP non-linearity: "relu2" (ReLU squared), "gelu" (exact: nanoGPT's nn.GELU) or "gelu_tanh" (the tanh
    # approximation GPT-2's weights were trained with; exact GELU would not reproduce their logits)
    activation: str = "relu2"
    tie_embeddings: bool = False  # share the token embedding with the LM head
    # The parts `scratchgpt ladder` takes away on its early rungs; each acts in one line where the part lives.
    positions: bool = True  # position information (RoPE, or learned with rope=False); False: the causal mask alone
    mlp: bool = True  # a feed-forward layer after each attention
    residual: bool = True  # each part adds to the stream; False: its output replaces the stream
    norms: bool = True  # LayerNorm before each part and before the head

    def __post_init__(self) -> None:
        if self.arch not in ("gpt", "bigram"):
            raise ScratchGPTError(f"unknown architecture '{self.arch}'; use gpt or bigram")
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ScratchGPTError(f"--{name.replace('_', '-')} must be at least 1")
        if self.arch == "gpt" and self.n_embd % self.n_head:
            raise ScratchGPTError(f"--n-embd {self.n_embd} is not divisible by --n-head {self.n_head}; pick a multiple")
        if self.arch == "gpt" and self.rotary and self.head_size % 2:
            raise ScratchGPTError(f"RoPE needs an even head size, got {self.head_size}; change --n-embd")
        if self.activation not in ACTIVATIONS:
            raise ScratchGPTError(f"unknown activation '{self.activation}'; use {', '.join(ACTIVATIONS)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ScratchGPTError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.attn_dropout is not None and not 0.0 <= self.attn_dropout < 1.0:
            raise ScratchGPTError(f"--attn-dropout must be in [0, 1), got {self.attn_dropout}")

    @property
    def attention_dropout(self) -> float:
        return self.dropout if self.attn_dropout is None else self.attn_dropout

    @property
    def rotary(self) -> bool:
        """Positions by rotating queries and keys (RoPE), with no weights of their own."""
        return self.rope and self.positions

    @property
    def learned_positions(self) -> bool:
        """One learned embedding per position (GPT-2's): the context cannot change after training."""
        return self.positions and not self.rope

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    @property
    def approx_params(self) -> int:
        """Roughly the parameter count (12 C^2 per block plus embeddings), for sanity checks."""
        if self.arch == "bigram":
            return self.vocab_size**2
        return 12 * self.n_layer * self.n_embd**2 + 2 * (self.vocab_size + self.block_size) * self.n_embd

    def to_dict(self) -> dict:
        d = asdict(self)
        for name, default in NEWER_FIELDS.items():
            if d[name] is default:  # fields newer than the format, at their default: left out, so
                del d[name]  # earlier versions still read the checkpoint
        return d

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ScratchGPTError(f"model config has unknown fields {unknown}; upgrade ScratchGPT")
        return cls(**d)


# Fields newer than the checkpoint format: at their default they are not written, so earlier versions still read it.
NEWER_FIELDS = dict(attn_dropout=None, norm_bias=False, positions=True, mlp=True, residual=True, norms=True)


def rope_tables(config: GPTConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of every (position, frequency) pair, each (block_size, hs/2)."""
    hs = config.head_size
    inv_freq = 1.0 / (10000 ** (torch.arange(0, hs, 2, dtype=torch.float32) / hs))
    angles = torch.outer(torch.arange(config.block_size, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x1, x2) of each head by a position-dependent angle.

    x: (B, T, ..., hs); cos, sin: (T, 1, ..., hs/2), broadcast over batch and heads.
    """
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: each position mixes the values of itself and the positions before it,
    weighted by how well its query matches their keys."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.head_size = config.n_head, config.head_size
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v at once
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.qk_norm = config.qk_norm
        self.attn_dropout_p = config.attention_dropout  # on the attention weights (SDPA's dropout_p)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, rope=None, kv=None, pos=0):
        """x: (B, T, C) at positions pos..pos+T-1 -> (B, T, C). kv: this layer's (k, v) cache buffers, each
        (B, nh, block_size, hs), or None; with them the new keys and values are cached at [pos, pos + T) and
        the queries attend over everything cached up to pos + T (a prompt's prefill)."""
        q, k, v = self.qkv(x, rope)  # each (B, nh, T, hs)
        mask, causal = None, True
        if kv is not None:
            k, v, mask, causal = with_cache(kv, k, v, pos)  # (B, nh, pos + T, hs)
        dropout_p = self.attn_dropout_p if self.training else 0.0
        if self.training and x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            y = cpu_bf16_training(q, k, v, mask=mask, causal=causal, dropout_p=dropout_p)
        else:  # softmax(q k^T / sqrt(hs) + causal mask) v, in one fused kernel
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, dropout_p=dropout_p)
        return self.merge_heads(y.to(x.dtype))  # (B, T, C)

    def decode(self, x, rope, kv, pos: torch.Tensor):
        """forward for one new token per row, x (B, 1, C), at a tensor position (see decode_attention)."""
        q, k, v = self.qkv(x, rope)  # each (B, nh, 1, hs)
        return self.merge_heads(decode_attention(q, k, v, kv, pos, self.head_size))

    def qkv(self, x, rope):
        """Queries, keys and values of x (B, T, C), each (B, nh, T, hs), normed and rotated as the model does."""
        B, T, C = x.shape
        qkv = self.c_attn(x).view(B, T, 3, self.n_head, self.head_size)  # (B, T, 3, nh, hs)
        qk = qkv[:, :, :2]  # queries and keys are normed and rotated together: half the ops
        if self.qk_norm:
            qk = F.layer_norm(qk, (self.head_size,))
        if rope is not None:
            qk = apply_rope(qk, *rope)
        q, k = qk.transpose(1, 3).unbind(2)  # each (B, nh, T, hs)
        return q, k, qkv[:, :, 2].transpose(1, 2)

    def weights(self, x, rope=None):
        """The attention weights forward applies to x (B, T, C) with no cache: softmax(q k^T / sqrt(hs)
        + causal mask), (B, nh, T, T) in fp32, row t over keys 0..t. Computed apart from forward, which
        never builds them (SDPA's fused kernel), so looking costs the normal path nothing."""
        q, k, _ = self.qkv(x, rope)
        att = (q.float() @ k.float().transpose(-2, -1)) * self.head_size**-0.5  # (B, nh, T, T)
        T = x.size(1)
        future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        return att.masked_fill(future, float("-inf")).softmax(dim=-1)

    def merge_heads(self, y):
        """(B, nh, T, hs) -> (B, T, C): the heads side by side, then the output projection."""
        B, nh, T, hs = y.shape
        y = y.transpose(1, 2).reshape(B, T, nh * hs)  # (B, T, C): heads side by side
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.relu2 = config.activation == "relu2"
        self.gelu_approximate = "tanh" if config.activation == "gelu_tanh" else "none"
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        h = self.c_fc(x)  # (B, T, 4C)
        h = F.relu(h).square() if self.relu2 else F.gelu(h, approximate=self.gelu_approximate)
        return self.resid_dropout(self.c_proj(h))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x)).

    LayerNorm (without bias unless norm_bias) rather than RMSNorm: the same quality class, and on
    CPU PyTorch's LayerNorm kernel is faster than its RMSNorm, both at decode and at training shapes.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = layer_norm(config)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = layer_norm(config) if config.mlp else None
        self.mlp = MLP(config) if config.mlp else None
        self.residual = config.residual

    def forward(self, x, rope=None, kv=None, pos=0):
        x = self.add(x, self.attn(self.ln_1(x), rope, kv, pos))
        return self.feed_forward(x)

    def decode(self, x, rope, kv, pos: torch.Tensor):
        """forward for one new token per row at a tensor position (GPT.decode_step)."""
        x = self.add(x, self.attn.decode(self.ln_1(x), rope, kv, pos))
        return self.feed_forward(x)

    def feed_forward(self, x):
        return x if self.mlp is None else self.add(x, self.mlp(self.ln_2(x)))

    def add(self, x, branch):
        """The residual connection: the branch adds to the stream (without residuals, it replaces it)."""
        return x + branch if self.residual else branch


def layer_norm(config: GPTConfig) -> nn.Module:
    """A LayerNorm over the width, or nothing where the model has no norms (the ladder's early rungs)."""
    return nn.LayerNorm(config.n_embd, bias=config.norm_bias) if config.norms else nn.Identity()


class LanguageModel(nn.Module):
    """What GPT and the bigram share: forward(idx, targets=None, *, kv_cache=None, last_only=False) returns
    (logits, loss), and the reference sampler below runs on it."""

    config: GPTConfig

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, *, temperature=1.0, top_k=None, generator=None):
        """Reference sampler: crop to block_size, run the whole window, sample from the last logits.

        Slow on purpose (it recomputes everything per token); the engine is the fast path and
        tests hold it to this one.
        """
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -self.config.block_size :], last_only=True)
            nxt = sample_next(logits[:, -1, :], temperature=temperature, top_k=top_k, generator=generator)
            idx = torch.cat((idx, nxt), dim=1)
        return idx


class GPT(LanguageModel):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd) if config.learned_positions else None
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = layer_norm(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        if config.rotary:
            cos, sin = rope_tables(config)
            self.register_buffer("rope_cos", cos, persistent=False)  # derived: never saved
            self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):  # GPT-2: scale residual projections by depth
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def set_dropout(self, **changes: float | None) -> None:
        """Train on with another `dropout` and/or `attn_dropout` (a fine-tune's regularisation;
        the weights are unchanged). Attention keeps following dropout while attn_dropout is None."""
        if not set(changes) <= {"dropout", "attn_dropout"}:  # any other field would need a new model
            raise TypeError(f"set_dropout changes dropout and attn_dropout only, not {sorted(changes)}")
        self.config = replace(self.config, **changes)  # validated there
        for module in self.modules():
            if isinstance(module, nn.Dropout):
                module.p = self.config.dropout
            elif isinstance(module, CausalSelfAttention):
                module.attn_dropout_p = self.config.attention_dropout

    def set_block_size(self, n: int) -> None:
        """Attend over n tokens from now on: a fine-tune that lengthens (or shortens) the context.

        RoPE encodes positions by rotation, with no weights of their own, so only the angle tables
        change. Learned positions have one embedding per position and cannot be extended.
        """
        if self.config.learned_positions:
            if n == self.config.block_size:
                return
            raise ScratchGPTError(
                f"this model learned one embedding per position (--no-rope), so its context "
                f"stays {self.config.block_size}; drop --block-size"
            )
        self.config = replace(self.config, block_size=n)  # validated there
        if self.config.rotary:
            cos, sin = rope_tables(self.config)
            self.rope_cos, self.rope_sin = cos.to(self.rope_cos.device), sin.to(self.rope_sin.device)

    def embed(self, idx, positions):
        """Token embeddings of idx (B, T) plus their positions: positions (T,) for every row alike, or (B, 1)
        for one token per row each at its own. Returns x (B, T, C) and rope, this call's (cos, sin) shaped to
        broadcast over the queries and keys (B, T, 2, nh, hs/2), or None with learned positions or none."""
        x = self.wte(idx)
        if self.wpe is not None:
            return x + self.wpe(positions), None  # (T, C) or (B, 1, C), broadcast over the batch
        if not self.config.rotary:
            return x, None  # no positions: only the causal mask says what came before
        rope = tuple(t[positions][..., None, None, :].to(x.dtype) for t in (self.rope_cos, self.rope_sin))
        return x, rope

    def forward(self, idx, targets=None, *, kv_cache=None, last_only=False):
        """idx: (B, T) token ids. Returns (logits, loss): logits (B, T, V), or (B, 1, V) with
        last_only; loss is the mean cross-entropy against targets (B, T), or None.

        With kv_cache (a `KVCache` from the engine) the tokens are placed at kv_cache.pos and the
        cache is advanced by T.
        """
        B, T = idx.shape
        pos = kv_cache.pos if kv_cache is not None else 0
        if pos + T > self.config.block_size:
            raise ValueError(f"{pos + T} positions exceed block_size {self.config.block_size}")
        x, rope = self.embed(idx, torch.arange(pos, pos + T, device=idx.device))  # (B, T, C)
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            kv = kv_cache.layer(i) if kv_cache is not None else None
            x = block(x, rope, kv, pos)
        if kv_cache is not None:
            kv_cache.advance(T)
        x = self.ln_f(x)
        if last_only:
            x = x[:, -1:, :]  # (B, 1, C): the head is the costliest matmul for big vocabularies
        logits = self.lm_head(x)  # (B, T, V)
        return logits, None if targets is None else lm_loss(logits, targets)

    @torch.no_grad()
    def trace(self, idx):
        """The forward pass laid open, for looking inside: idx (B, T) within block_size.

        Returns (logits (B, T, V), attention, residual): attention holds each block's weights (B, nh,
        T, T), fp32 (`CausalSelfAttention.weights`); residual the stream after the embeddings and after
        each block, n_layer + 1 tensors (B, T, C), before the final norm (the logit lens applies ln_f
        and the head to each). Eval mode, no cache: the same numbers as forward.
        """
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"{T} positions exceed block_size {self.config.block_size}")
        x, rope = self.embed(idx, torch.arange(T, device=idx.device))  # (B, T, C)
        attention, residual = [], [x]
        for block in self.blocks:
            attention.append(block.attn.weights(block.ln_1(x), rope))
            x = block(x, rope)
            residual.append(x)
        return self.lm_head(self.ln_f(x)), attention, residual

    def decode_step(self, idx, pos, caches):
        """The one-token forward that `Engine` compiles: idx (B, 1) at position pos, a 0-d long
        tensor (or (B,): each row at its own position), with caches one (k, v) buffer pair per block.
        Returns the logits (B, V) in fp32.

        Every shape is fixed and pos is data, so one compiled graph serves the whole generation;
        the caller advances its own count of cached positions.
        """
        x, rope = self.embed(idx, pos.view(-1, 1))  # (B, 1, C); positions (1 or B, 1)
        for block, kv in zip(self.blocks, caches, strict=True):
            x = block.decode(x, rope, kv, pos)
        return self.lm_head(self.ln_f(x))[:, -1].float()


class Bigram(LanguageModel):
    """The seeds' baseline: the next token depends only on the current one (a V x V table)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.table = nn.Embedding(config.vocab_size, config.vocab_size)
        nn.init.normal_(self.table.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None, *, kv_cache=None, last_only=False):
        if kv_cache is not None:
            kv_cache.advance(idx.shape[1])
        if last_only:
            idx = idx[:, -1:]
        logits = self.table(idx)  # (B, T, V)
        return logits, None if targets is None else lm_loss(logits, targets)


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy in nats, computed in fp32 whatever the logits' dtype."""
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))


def build_model(config: GPTConfig) -> GPT | Bigram:
    return Bigram(config) if config.arch == "bigram" else GPT(config)


def compile_blocks(model: GPT | Bigram) -> None:
    """torch.compile every transformer block in place (the bigram has none).

    The blocks share one class and one forward, so the graph is built once, not once per layer,
    and every layer runs it. The weights
    stay where they were, so checkpoints and state dicts do not change. Code that should run eager
    (an evaluation, whose grad mode differs) wraps itself in torch.compiler.set_stance("force_eager").
    """
    for block in getattr(model, "blocks", ()):
        block.compile()


@torch.no_grad()
def resize_vocab(model: GPT | Bigram, vocab_size: int) -> GPT | Bigram:
    """A copy of model whose vocabulary has grown to vocab_size: old rows (old token ids) keep
    their weights; new rows of the embedding and LM head start small and random."""
    old = model.config
    if vocab_size < old.vocab_size:
        raise ValueError("a vocabulary only grows: old token ids must keep their meaning")
    config = GPTConfig(**{**old.to_dict(), "vocab_size": vocab_size})
    device = next(model.parameters()).device
    grown = build_model(config).to(device)
    state = model.state_dict()
    for name, target in grown.state_dict().items():
        if name not in state:
            continue  # a derived buffer
        source = state[name]
        if source.shape == target.shape:
            target.copy_(source)
        else:  # wte, lm_head (V, C) or the bigram table (V, V): the old block sits top-left
            target[tuple(slice(0, n) for n in source.shape)].copy_(source)
    return grown
