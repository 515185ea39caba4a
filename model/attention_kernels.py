"""The attention paths beside the textbook one in model/gpt.py, each for one situation, each with its reason.

`CausalSelfAttention.forward` is softmax(q kᵀ / √hs + causal mask) v through SDPA. These are the others:
  with_cache           a prompt's prefill: the new keys and values join the cache and the queries see it all
  decode_attention     the decode step: one new token per row at a tensor position, spelled out for torch.compile
  cpu_bf16_training    training on the CPU under bf16 autocast: attention kept in fp32, or blocked when compiled
All compute exactly what the textbook line computes (tests/model/test_engine.py and
tests/training/test_fast_paths.py hold them to it); bench/ prints what each buys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ATTENTION_BLOCK = 64  # query rows per block of blocked_causal_attention


def with_cache(kv, k, v, pos: int):
    """Write this call's keys and values (B, nh, T, hs) into the cache buffers kv at [pos, pos + T) and return
    what the queries attend over: (k, v) of every cached position (B, nh, pos + T, hs), the mask, and is_causal."""
    k_buf, v_buf = kv
    T = k.size(2)
    k_buf[:, :, pos : pos + T] = k
    v_buf[:, :, pos : pos + T] = v
    q_dtype = k.dtype
    k, v = k_buf[:, :, : pos + T].to(q_dtype), v_buf[:, :, : pos + T].to(q_dtype)
    if T == 1:
        return k, v, None, False  # one new query may see every cached key
    if pos == 0:
        return k, v, None, True
    # the queries sit at absolute positions pos..pos+T-1; SDPA's is_causal would align them to key 0
    q_pos = torch.arange(pos, pos + T, device=k.device)[:, None]
    return k, v, torch.arange(pos + T, device=k.device)[None, :] <= q_pos, False


def decode_attention(q, k, v, kv, pos: torch.Tensor, head_size: int) -> torch.Tensor:
    """One query per row (B, nh, 1, hs) at position pos (a 0-d tensor, or (B,): each row at its own, as the
    server's batch has them) against the whole cache buffer, the slots past pos masked out -> (B, nh, 1, hs).

    pos is data, not a Python int, and every shape is the buffer's, so one compiled graph serves a whole
    generation. Spelled out rather than SDPA: compiled, these few ops fuse into one loop, while the flash
    kernel's set-up alone cost more than all of them (bench/sample_speed.py times the decode step).
    """
    k_buf, v_buf = kv
    if pos.dim() == 0:
        k_buf.index_copy_(2, pos.view(1), k.to(k_buf.dtype))
        v_buf.index_copy_(2, pos.view(1), v.to(v_buf.dtype))
    else:
        rows = torch.arange(q.size(0), device=q.device)
        k_buf[rows, :, pos] = k[:, :, 0].to(k_buf.dtype)  # (B, nh, hs) into row b at pos[b]
        v_buf[rows, :, pos] = v[:, :, 0].to(v_buf.dtype)
    # a narrower cache is widened as it is read; compiled, that fuses in and copies nothing
    k_all, v_all = k_buf.to(q.dtype), v_buf.to(q.dtype)
    att = (q @ k_all.transpose(-2, -1)) * head_size**-0.5  # (B, nh, 1, block)
    past = torch.arange(k_buf.size(2), device=q.device) > pos.view(-1, 1, 1, 1)  # (1 or B, 1, 1, block)
    return att.masked_fill(past, float("-inf")).softmax(dim=-1) @ v_all  # (B, nh, 1, hs)


def cpu_bf16_training(q, k, v, *, mask, causal: bool, dropout_p: float) -> torch.Tensor:
    """Attention for a training step on the CPU under bf16 autocast.

    PyTorch's bf16 flash-attention backward on the CPU is several times slower than its fp32 one at small
    head sizes, so attention itself runs in fp32 and the matmuls around it in bf16; a compiled step with the
    plain causal mask takes blocked_causal_attention instead (`python bench/train_speed.py --compile`).
    """
    if torch.compiler.is_compiling() and causal and mask is None and dropout_p == 0.0:
        return blocked_causal_attention(q, k, v)
    with torch.autocast("cpu", enabled=False):
        return F.scaled_dot_product_attention(
            q.float(), k.float(), v.float(), attn_mask=mask, is_causal=causal, dropout_p=dropout_p
        )


def blocked_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal attention spelled out for a compiled CPU training step: q, k, v (B, nh, T, hs) in
    bf16, their two products bf16 matmuls, the softmax in fp32.

    The queries go in blocks of ATTENTION_BLOCK rows, and a block's scores stop at its last
    query's own position: the keys after it are masked for every row of the block, so their
    products are skipped, not computed and then masked (at T=256, 37.5% of the T x T work). Under
    torch.compile each block's scale, mask, softmax and casts fuse into one loop, and this beats the
    fp32 flash kernel forward and backward (`python bench/train_speed.py --compile` prints both).
    Eager it would be slower than SDPA (each op a pass over T x T), so only the compiled step takes it.
    """
    T, scale = q.size(-2), q.size(-1) ** -0.5
    ys = []
    for start in range(0, T, ATTENTION_BLOCK):
        end = min(start + ATTENTION_BLOCK, T)
        att = (q[:, :, start:end] @ k[:, :, :end].transpose(-2, -1)).float() * scale  # (B, nh, rows, end)
        future = torch.arange(end, device=q.device)[None, :] > torch.arange(start, end, device=q.device)[:, None]
        ys.append(att.masked_fill(future, float("-inf")).softmax(dim=-1).to(v.dtype) @ v[:, :, :end])
    return torch.cat(ys, dim=2)
