"""Merge a trained LoRA adapter into its base model: a standalone folder (model + tokenizer) that any
``from_pretrained`` or ``vllm serve`` can load, written atomically.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from persona_core.errors import UsageError


def merge_adapter(adapter_dir: Path, merged_dir: Path, cache_dir: str | None = None) -> Path:
    """Load the adapter's base unquantized, in its stored dtype (4/8-bit weights cannot be merged), merge, save."""
    from peft import PeftConfig, PeftModel
    from persona_core.embedded import resolve_model_name
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (adapter_dir / "adapter_config.json").exists():
        raise UsageError(f"no trained adapter in {adapter_dir}: run --stage train first (same flags)")
    base_name = PeftConfig.from_pretrained(str(adapter_dir)).base_model_name_or_path
    base = AutoModelForCausalLM.from_pretrained(resolve_model_name(base_name), dtype="auto", cache_dir=cache_dir)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir))
    tmp = merged_dir.with_name(merged_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "merge_info.json").write_text(
            json.dumps({"adapter": str(adapter_dir), "base_model": base_name}, indent=2), encoding="utf-8"
        )
        shutil.rmtree(merged_dir, ignore_errors=True)
        os.replace(tmp, merged_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return merged_dir
