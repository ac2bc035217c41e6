"""Padding-free DPO: each forward pass of TRL's DPOTrainer on one packed row of its sequences' real tokens.

Hand-written because TRL 1.16 cannot do it: its ``DPOTrainer`` turns ``padding_free=True`` off with a warning
("temporarily unavailable after a refactor") and pads every batch. TRL's loss code stays as it is: the trainer still
collates padded ``[2B, L]`` batches (cheap, on the CPU), and the model's forward, which TRL patched to return
per-token log-probabilities (``add_fused_lm_head``), is wrapped here so that it computes on the real tokens alone,
packed into one row whose position ids restart at each sequence (transformers then attends within each sequence
only, as for padding-free SFT), and hands TRL the log-probabilities back in the padded shape. Every sequence starts
with prompt tokens, which carry no label, so no prediction crosses from one sequence into the next; labels are
shifted within each sequence. The policy and the reference (the same model with the adapter off) both pass through
it, so the DPO loss equals the padded one (tested) while no padding is computed.
"""

from __future__ import annotations

import types

PER_TOKEN_FIELDS = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1", "label_mask")
"""The per-token outputs of TRL's fused LM head, shaped like the shifted labels."""


def pack_dpo_forward(model) -> None:
    """Wrap the fused forward of ``model`` (the transformers model under any PEFT wrapper) to compute packed."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    fused_forward = base.forward

    def packed_forward(
        self, *args, fused_lm_head=False, input_ids=None, attention_mask=None, labels=None, **kw
    ):
        if (
            not fused_lm_head
            or args
            or attention_mask is None
            or "position_ids" in kw
            or "shift_labels" in kw
        ):
            if input_ids is not None:
                kw["input_ids"] = input_ids
            if attention_mask is not None:
                kw["attention_mask"] = attention_mask
            return fused_forward(*args, fused_lm_head=fused_lm_head, labels=labels, **kw)
        return packed_call(fused_forward, input_ids, attention_mask, labels, kw)

    base.forward = types.MethodType(packed_forward, base)


def packed_call(fused_forward, input_ids, attention_mask, labels, kwargs):
    """One fused forward on the packed real tokens of a right-padded batch, its per-token outputs re-padded."""
    import torch
    import torch.nn.functional as F

    real = attention_mask.bool()
    lengths = real.sum(dim=1)
    if not torch.equal(real, torch.arange(real.shape[1], device=real.device) < lengths.unsqueeze(1)):
        raise ValueError(
            "padding-free DPO needs right-padded batches (TRL's DataCollatorForPreference pads right)"
        )
    position_ids = (real.cumsum(dim=1) - 1)[real].unsqueeze(0)
    shift_labels = F.pad(
        labels[:, 1:], (0, 1), value=-100
    )  # each position predicts its successor in the sequence
    output = fused_forward(
        input_ids=input_ids[real].unsqueeze(0),
        position_ids=position_ids,
        shift_labels=shift_labels[real].unsqueeze(0),
        fused_lm_head=True,
        **kwargs,
    )
    for name in PER_TOKEN_FIELDS:
        packed = getattr(output, name, None)
        if packed is not None:  # the padded forward's shape: [2B, L - 1], zero (False) where padding was
            padded = packed.new_zeros(real.shape).masked_scatter(real, packed[0])
            setattr(output, name, padded[:, :-1])
    return output
