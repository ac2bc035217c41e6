"""Merge a trained LoRA adapter into its base model: a standalone folder (model + tokenizer) that any
``from_pretrained`` or ``vllm serve`` can load, written atomically.

Merging is a fingerprinted stage: its fingerprint is the adapter's identity (the training fingerprint saved with
the adapter), written into the merged folder too, so that DPO training and generation downstream identify the
merged model by what made it. A merged model of another adapter is refused in one line, or redone under
``--overwrite``.
"""

from __future__ import annotations

import json
from pathlib import Path

from persona_core import layout
from persona_core.embedded import resolve_model_name
from persona_core.errors import UsageError
from persona_core.io import atomic_output
from persona_core.runs import model_identity, write_run_record
from persona_core.stage import WorkStage, run_work_stage

KEEP_BOTH = "--model_nickname (or --model_save_dir)"


def merge_adapter(
    adapter_dir: Path, merged_dir: Path, cache_dir: str | None = None, fingerprint: dict | None = None
) -> Path:
    """Load the adapter's base unquantized, in its stored dtype (4/8-bit weights cannot be merged), merge, save."""
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (adapter_dir / layout.ADAPTER_CONFIG_FILE).exists():
        raise UsageError(f"no trained adapter in {adapter_dir}: run --stage train first (same flags)")
    fingerprint = fingerprint or merge_fingerprint(adapter_dir)
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
        (tmp / layout.MODEL_FINGERPRINT_FILE).write_text(
            json.dumps(fingerprint, indent=2, default=str), encoding="utf-8"
        )
    return merged_dir


def merge_fingerprint(adapter_dir: Path) -> dict:
    """What determines the merged model: the adapter (its training fingerprint names its base and data)."""
    return {"adapter": model_identity(str(adapter_dir))}


def merge(dirs: layout.PTModelDirs, overwrite: bool = False, cache_dir: str | None = None) -> Path:
    """The merge stage: merge ``dirs.adapter`` into ``dirs.merged`` unless the same merge exists; return the folder."""
    if not (dirs.adapter / layout.ADAPTER_CONFIG_FILE).exists():
        raise UsageError(f"no trained adapter in {dirs.adapter}: run --stage train first (same flags)")
    files = dirs.stage_files(layout.MERGE)
    fingerprint = merge_fingerprint(dirs.adapter)
    finished = dirs.merged / layout.MODEL_CONFIG_FILE
    stage = WorkStage(
        "merged model", files, fingerprint, [dirs.merged, files.run_record], finished, KEEP_BOTH
    )

    def work():
        merge_adapter(dirs.adapter, dirs.merged, cache_dir, fingerprint)
        record = {"adapter": str(dirs.adapter), "merged": str(dirs.merged)}
        write_run_record(files, record, {}, model=str(dirs.adapter))

    if run_work_stage(stage, work, overwrite):
        print(f"merged model: {dirs.merged}")
    return dirs.merged
