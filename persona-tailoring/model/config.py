"""Shared defaults for persona tailoring; every value here is also a ``run_model`` flag of the same name.

Edit these to change the defaults for your setup (the seed README's "fill in config.py" step), or pass the
flag. Keys never live here: they come from the environment or ``.env`` (see ``.env.example``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from persona_core.embedded import EMBEDDED_MODEL_NAME, REPO_ROOT

model_nickname = "smollm2-135m"  # folder name for this model's checkpoints and results
base_model_name = EMBEDDED_MODEL_NAME  # Hub id or local folder (e.g. meta-llama/Llama-3.1-8B)
use_wandb = False  # log training to Weights & Biases (needs WANDB_API_KEY or WANDB_KEY)
dataset_name = "Sample"  # dataset name: Hub config, results folder, per-dataset persona and primer
hf_dataset_name = str(REPO_ROOT / "data" / "sample-tailoring")  # Hub id (e.g. nbalepur/persona-tailoring) or folder
load_in_8bit = False  # CUDA + bitsandbytes only
load_in_4bit = False  # CUDA + bitsandbytes only
cache_dir = None  # Hugging Face cache for models and datasets
model_save_dir = "models/persona-tailoring"  # adapters, checkpoints and merged models
results_save_dir = "results/persona-tailoring"  # generations
device_map = "auto"


@dataclass(frozen=True)
class RunPaths:
    """Where one (dataset, model, method, training type) keeps its files."""

    model_save_dir: str
    results_save_dir: str
    dataset_name: str
    model_nickname: str

    def method_dir(self, method: str, training_type: str) -> Path:
        return Path(self.model_save_dir) / self.dataset_name / self.model_nickname / f"{method}_{training_type}"

    def checkpoints_dir(self, method: str, training_type: str) -> Path:
        return self.method_dir(method, training_type) / "checkpoints"

    def adapter_dir(self, method: str, training_type: str) -> Path:
        return self.method_dir(method, training_type) / "adapter"

    def merged_dir(self, method: str, training_type: str) -> Path:
        return self.method_dir(method, training_type) / "merged"

    def results_path(self, method: str, training_type: str, inference_type: str) -> Path:
        name = f"{method}_Persona(training_type={training_type}, inference_type={inference_type}).jsonl"
        return Path(self.results_save_dir) / self.dataset_name / self.model_nickname / name


def wandb_enabled(requested: bool) -> bool:
    """True when tracking is requested and a key exists; requested without a key is a clear error."""
    if not requested:
        return False
    from persona_core.secrets import get_key

    key = get_key("wandb")  # raises a UsageError naming WANDB_API_KEY when missing
    os.environ.setdefault("WANDB_API_KEY", key)  # the seed's WANDB_KEY name works too
    return True


def export_hub_token() -> None:
    """Let huggingface_hub see a read token stored under the seed's HF_READ_TOKEN name (gated models)."""
    from persona_core.secrets import get_key

    token = get_key("hf_read", required=False)
    if token:
        os.environ.setdefault("HF_TOKEN", token)
