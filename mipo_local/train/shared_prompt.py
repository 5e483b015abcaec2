"""One pass over the prompt a DPO pair's two answers share.

trl's DPOTrainer feeds the model a batch of 2B rows: the B prompts with their chosen answers, then the
same B prompts with their rejected answers, right-padded. The prompt (most of each row here: ~500 of
~600 tokens) is therefore computed twice in every forward and backward, and twice more for the
reference. `shared_prompt_forward` makes the model's backbone see each pair as one packed row instead:

    [shared prefix][chosen's rest][rejected's rest]

with position ids that restart after the prefix for the rejected part, and an attention mask under
which the rejected tokens see the prefix and themselves but not the chosen tokens. Every token then
attends to exactly what it attends to in trl's layout, at the same positions, so the hidden states are
the same (up to float rounding) while the prefix is computed once. The output is unpacked back into
trl's 2B-row layout, so trl's loss, log-prob sums and metrics are untouched (tested against trl's own
computation: loss and LoRA gradients equal within fp32 tolerance).

The shared prefix is found from the token ids themselves (the longest common prefix of row i and row
i + B), so nothing about trl's batch format beyond the row order is assumed; any other call (an odd
batch, a cache, a non right-padded mask, an attention kernel that takes no custom mask) goes to the
model's own forward unchanged.
"""

from __future__ import annotations

import contextlib

PACKABLE_ATTENTION = ("sdpa", "eager")      # kernels that accept a custom 4D mask


def _right_padded_lengths(attention_mask):
    """Per-row lengths if every row is ones then zeros, else None."""
    import torch

    lengths = attention_mask.sum(dim=1)
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    expected = (positions[None, :] < lengths[:, None]).to(attention_mask.dtype)
    return lengths if torch.equal(expected, attention_mask) else None


def _common_prefix(a, b, limit: int) -> int:
    differ = (a[:limit] != b[:limit]).nonzero()
    return int(differ[0, 0]) if len(differ) else limit


def pack_pairs(input_ids, attention_mask):
    """(packed ids [B, T], position ids [B, T], bool mask [B, 1, T, T], index [2B, L]) for trl's
    [chosen rows; rejected rows] batch, or None when the batch is not of that shape.
    `index[r, t]` is where row r's token t sits in its packed row (0 for padding)."""
    import torch

    rows, width = input_ids.shape
    if rows % 2 or rows == 0:
        return None
    lengths = _right_padded_lengths(attention_mask)
    if lengths is None:
        return None
    pairs = rows // 2
    device = input_ids.device
    layout = []
    for i in range(pairs):
        la, lb = int(lengths[i]), int(lengths[i + pairs])
        p = _common_prefix(input_ids[i], input_ids[i + pairs], min(la, lb))
        layout.append((p, la, lb))
    total = max(la + lb - p for p, la, lb in layout)
    packed = torch.zeros((pairs, total), dtype=input_ids.dtype, device=device)
    position = torch.zeros((pairs, total), dtype=torch.long, device=device)
    mask = torch.zeros((pairs, 1, total, total), dtype=torch.bool, device=device)
    index = torch.zeros((rows, width), dtype=torch.long, device=device)
    causal = torch.ones((total, total), dtype=torch.bool, device=device).tril()
    for i, (p, la, lb) in enumerate(layout):
        n = la + lb - p                      # prefix + chosen's rest + rejected's rest
        packed[i, :la] = input_ids[i, :la]
        packed[i, la:n] = input_ids[i + pairs, p:lb]
        position[i, :la] = torch.arange(la, device=device)
        position[i, la:n] = torch.arange(p, lb, device=device)
        mask[i, 0, :n, :n] = causal[:n, :n]
        mask[i, 0, la:n, p:la] = False       # the rejected answer does not see the chosen one
        pad = torch.arange(n, total, device=device)
        mask[i, 0, pad, pad] = True          # padding sees itself only (no empty softmax rows)
        index[i, :la] = torch.arange(la, device=device)
        index[i + pairs, :p] = torch.arange(p, device=device)
        index[i + pairs, p:lb] = torch.arange(la, n, device=device)
    return packed, position, mask, index


def _attention_kind(backbone) -> str:
    config = getattr(backbone, "config", None)
    return getattr(config, "_attn_implementation", None) or "eager"


def _packed_forward(original, backbone):
    import torch

    def forward(input_ids=None, attention_mask=None, **kwargs):
        extra = {k: v for k, v in kwargs.items() if v is not None and not (k == "use_cache" and v is False)}
        kind = _attention_kind(backbone)
        plan = None
        if (input_ids is not None and attention_mask is not None and input_ids.dim() == 2
                and attention_mask.dim() == 2 and not extra and kind in PACKABLE_ATTENTION):
            plan = pack_pairs(input_ids, attention_mask)
        if plan is None:
            return original(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        packed, position, mask, index = plan
        if kind == "eager":                  # an additive mask: 0 where seen, the dtype's minimum elsewhere
            dtype = backbone.get_input_embeddings().weight.dtype
            mask = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
        out = original(input_ids=packed, attention_mask=mask, position_ids=position, use_cache=False)
        hidden = out.last_hidden_state                                   # [B, T, H]
        pairs = packed.shape[0]
        row = torch.arange(2 * pairs, device=hidden.device) % pairs      # row r unpacks from packed row r mod B
        unpacked = hidden[row[:, None], index]                           # [2B, L, H]
        out.last_hidden_state = unpacked * attention_mask[:, :, None].to(unpacked.dtype)
        return out

    return forward


@contextlib.contextmanager
def shared_prompt_forward(model):
    """While inside, `model`'s backbone (a transformers causal LM's `base_model`) computes each DPO
    pair's shared prompt once. Patch before PEFT wraps the model; PEFT keeps the backbone object."""
    backbone = model.base_model
    own = backbone.__dict__.get("forward")   # an instance attribute of its own (hooks), if any
    backbone.forward = _packed_forward(backbone.forward, backbone)
    try:
        yield
    finally:
        if own is None:
            del backbone.forward             # back to the class's forward
        else:
            backbone.forward = own
