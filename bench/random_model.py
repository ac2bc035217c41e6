"""A Llama-architecture model with random weights, built from a config and saved with a chat tokenizer, for
benchmarks and device checks where no weights can be downloaded (``bench/gpu_check.sh`` builds its 1B model so).

Sizes: ``1b`` (about 1.07 B parameters: hidden 2048, 16 layers, 32 heads of 64, 8 key/value heads, MLP 8192, the
embeddings tied, as Llama-3.2-1B's shape with SmolLM2's 49152-token vocabulary) and ``tiny`` (about 3.2 M
parameters, nearly all embeddings: hidden 64, 2 layers, 2 heads of 32, the smallest head vLLM's CPU attention
takes) for smoke tests on a CPU. The tokenizer (default: the embedded SmolLM2-135M-Instruct's) brings the vocabulary
and the chat template. The weights are drawn on the CPU from ``--seed``, so the same seed gives the same weights on
every machine (a digest of them is printed); ``--device cuda`` draws them on the GPU instead (faster, other numbers).
Run from the repository root::

    python -m bench.random_model --output_dir /tmp/random-1b                       # 1b, bfloat16
    python -m bench.random_model --output_dir /tmp/random-tiny --size tiny --dtype float32
    python -m bench.random_model --output_dir /tmp/random-1b --tokenizer bench/out/gpu-carry/tokenizer
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from persona_core.cli import parse
from persona_core.embedded import embedded_model_path
from persona_core.errors import UsageError, run_cli

LLAMA_SHAPE = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
)
SIZES = {
    "1b": dict(zip(LLAMA_SHAPE, (2048, 8192, 16, 32, 8), strict=True)),
    "tiny": dict(zip(LLAMA_SHAPE, (64, 128, 2, 2, 1), strict=True)),
}
DTYPES = ("bfloat16", "float16", "float32")


@dataclass
class RandomModelArguments:
    """The model to build and where it goes."""

    output_dir: str | None = field(default=None, metadata={"help": "Folder to write (required)."})
    size: str = field(default="1b", metadata={"help": f"Model size: {', '.join(SIZES)}."})
    tokenizer: str | None = field(
        default=None,
        metadata={"help": "Tokenizer folder with a chat template (default: the embedded SmolLM2's)."},
    )
    dtype: str = field(default="bfloat16", metadata={"help": f"Weight dtype: {', '.join(DTYPES)}."})
    device: str = field(
        default="cpu",
        metadata={"help": "Where the weights are drawn: cpu (the same on every machine) or cuda (faster)."},
    )
    seed: int = field(default=0, metadata={"help": "Seed of the random weights."})
    max_position_embeddings: int = field(
        default=8192, metadata={"help": "Longest prompt + answer (SmolLM2's own context)."}
    )

    def check(self) -> None:
        if not self.output_dir:
            raise UsageError("--output_dir is required: the folder to write the model into")
        if self.size not in SIZES:
            raise UsageError(f"unknown --size '{self.size}': choose from {', '.join(SIZES)}")
        if self.dtype not in DTYPES:
            raise UsageError(f"unknown --dtype '{self.dtype}': choose from {', '.join(DTYPES)}")
        if self.device not in ("cpu", "cuda"):
            raise UsageError(f"unknown --device '{self.device}': choose cpu or cuda")


def load_tokenizer(path: str | None):
    """The tokenizer (a pad token, a chat template): ``path``, else the embedded model's."""
    from transformers import AutoTokenizer

    folder = Path(path) if path else embedded_model_path()
    if not folder.is_dir():
        raise UsageError(f"tokenizer folder '{folder}' does not exist")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.chat_template is None:
        raise UsageError(f"the tokenizer in '{folder}' has no chat template: the chat backends need one")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def model_config(size: str, tokenizer, dtype: str = "bfloat16", max_position_embeddings: int = 8192):
    """The ``LlamaConfig`` of ``size`` for ``tokenizer``'s vocabulary and special tokens."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=max_position_embeddings,
        rope_theta=100000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype=dtype,
        **SIZES[size],
    )


def parameter_count(config) -> int:
    """Parameters of ``config``'s model, counted on the meta device (nothing allocated)."""
    import torch
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    return sum(p.numel() for p in model.parameters())


def weights_digest(model) -> str:
    """A short digest of each weight's first and last 65536 values, byte for byte: the same seed on the same kind of
    device gives the same digest (a full hash of 1B parameters would take longer than drawing them)."""
    import hashlib

    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().reshape(-1)
        for part in (flat[:65536], flat[-65536:]):
            digest.update(name.encode())
            digest.update(part.to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def build(model_args: RandomModelArguments) -> dict:
    import torch
    from transformers import LlamaForCausalLM

    if model_args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU here; drop the flag (the weights are drawn on the CPU)")
    start = time.perf_counter()
    tokenizer = load_tokenizer(model_args.tokenizer)
    config = model_config(model_args.size, tokenizer, model_args.dtype, model_args.max_position_embeddings)
    dtype = getattr(torch, model_args.dtype)
    torch.manual_seed(model_args.seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # weights are drawn in the target dtype: no float32 copy of 1B parameters
    try:
        with torch.device(model_args.device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    built = time.perf_counter() - start
    parameters = sum(p.numel() for p in model.parameters())
    digest = weights_digest(model)
    output = Path(model_args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    return {
        "output_dir": str(output),
        "size": model_args.size,
        "parameters": parameters,
        "dtype": str(model.dtype).removeprefix("torch."),
        "device": model_args.device,
        "seed": model_args.seed,
        "weights_digest": digest,
        "build_s": round(built, 1),
        "total_s": round(time.perf_counter() - start, 1),
    }


def main(argv: list[str] | None = None) -> int:
    (model_args,) = parse((RandomModelArguments,), argv, description=__doc__.split("\n\n")[0])
    made = build(model_args)
    print(
        f"random {made['size']} Llama: {made['parameters']:,} parameters ({made['parameters'] / 1e9:.3f} B), "
        f"{made['dtype']}, drawn on {made['device']} with seed {made['seed']} (weights digest {made['weights_digest']}) "
        f"in {made['build_s']}s, saved in {made['total_s']}s total: {made['output_dir']}"
    )
    return 0


if __name__ == "__main__":
    run_cli(main)
