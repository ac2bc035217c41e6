"""Shared defaults for persona tailoring; every value here is also a ``run_model`` flag of the same name.

Edit these to change the defaults for your setup (the seed README's "fill in config.py" step), or pass the
flag. Keys never live here: they come from the environment or ``.env`` (see ``.env.example``).
"""

from __future__ import annotations

import os

from persona_core.embedded import EMBEDDED_MODEL_NAME
from persona_core.layout import SAMPLE_TAILORING
from persona_core.secrets import get_key

model_nickname = None  # folder name for this model's checkpoints and results (None: from base_model_name)
base_model_name = EMBEDDED_MODEL_NAME  # Hub id or local folder (e.g. meta-llama/Llama-3.1-8B)
use_wandb = False  # log training to Weights & Biases (needs WANDB_API_KEY or WANDB_KEY)
dataset_name = "Sample"  # dataset name: Hub config, results folder, per-dataset persona and primer
hf_dataset_name = str(SAMPLE_TAILORING)  # Hub id (e.g. nbalepur/persona-tailoring) or folder
load_in_8bit = False  # CUDA + bitsandbytes only
load_in_4bit = False  # CUDA + bitsandbytes only
cache_dir = None  # Hugging Face cache for models and datasets
model_save_dir = "models/persona-tailoring"  # adapters, checkpoints and merged models
results_save_dir = "results/persona-tailoring"  # generations
device_map = "auto"


def wandb_enabled(requested: bool) -> bool:
    """True when tracking is requested and a key exists; requested without a key is a clear error."""
    if not requested:
        return False
    key = get_key("wandb")  # raises a UsageError naming WANDB_API_KEY when missing
    os.environ.setdefault("WANDB_API_KEY", key)  # the seed's WANDB_KEY name works too
    return True


def export_hub_token() -> None:
    """Let huggingface_hub see a read token stored under the seed's HF_READ_TOKEN name (gated models)."""
    token = get_key("hf_read", required=False)
    if token:
        os.environ.setdefault("HF_TOKEN", token)
