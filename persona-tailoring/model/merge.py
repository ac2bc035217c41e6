"""Merge a trained LoRA adapter into its base model: a standalone folder (model + tokenizer) that any
``from_pretrained`` or ``vllm serve`` can load, written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

from persona_core import layout
from persona_core.errors import UsageError
from persona_core.io import atomic_output


def merge_adapter(adapter_dir: Path, merged_dir: Path, cache_dir: str | None = None) -> Path:
    """Load the adapter's base unquantized, in its stored dtype (4/8-bit weights cannot be merged), merge, save."""
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from persona_core.embedded import resolve_model_name

    if not (adapter_dir / layout.ADAPTER_CONFIG_FILE).exists():
        raise UsageError(f"no trained adapter in {adapter_dir}: run --stage train first (same flags)")
    base_name = PeftConfig.from_pretrained(str(adapter_dir)).base_model_name_or_path
    base = AutoModelForCausalLM.from_pretrained(
        resolve_model_name(base_name), dtype="auto", cache_dir=cache_dir
    )
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir))
    with atomic_output(merged_dir, folder=True) as tmp:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        info = {"adapter": str(adapter_dir), "base_model": base_name}
        (tmp / layout.MERGE_INFO_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
    return merged_dir
