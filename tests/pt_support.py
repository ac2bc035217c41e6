"""Helpers for the persona-tailoring model tests: a hand-made tailoring dataset and run arguments."""

from __future__ import annotations

import json
from pathlib import Path

PERSONA_COLUMNS = ("chosen_persona_gold", "rejected_persona_gold", "chosen_persona_retr", "rejected_persona_retr")
SPLITS = {"fewshot": 2, "sft_train": 4, "sft_val": 2, "dpo_train": 4, "dpo_val": 2, "test": 3}


def tailoring_row(split: str, i: int) -> dict:
    """Every cell names its own column and row, so a test can see exactly which column ended up where."""
    tag = f"{split}{i}"
    return {
        "prompt": f"question {tag}?",
        "chosen": f"chosen answer {tag}.",
        "rejected": f"rejected answer {tag}.",
        "chosen_persona_gold": f"The user is CG-{tag} and prefers detail.",
        "rejected_persona_gold": f"The user is RG-{tag} and prefers brevity.",
        "chosen_persona_retr": f"The user is CR-{tag} and prefers examples.",
        "rejected_persona_retr": f"The user is RR-{tag} and prefers jokes.",
    }


def write_tailoring_dataset(folder: Path, splits: dict[str, int] = SPLITS, blank: dict[str, list[str]] | None = None) -> Path:
    """A per-split JSONL folder; ``blank[split]`` lists columns to leave empty in that split."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in splits.items():
        rows = [tailoring_row(split, i) for i in range(n)]
        for row in rows:
            for column in (blank or {}).get(split, []):
                row[column] = ""
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def make_args(tmp_path: Path, model_dir: Path, data_dir: Path, **overrides):
    """run_model Arguments for a fast run on the tiny model: outputs under ``tmp_path``."""
    from persona_tailoring.model.run_model import Arguments

    values = dict(
        base_model_name=str(model_dir),
        model_nickname="tiny",
        dataset_name="Handmade",
        hf_dataset_name=str(data_dir),
        model_save_dir=str(tmp_path / "models"),
        results_save_dir=str(tmp_path / "results"),
        num_train_epochs=1,
        learning_rate=1e-3,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        max_length=128,
        max_new_tokens=8,
        batch_size=2,
    )
    values.update(overrides)
    return Arguments(**values)
