"""On a CUDA GPU: hf_chat places the model there, in bfloat16 when asked, and stops at stop strings; greedy float32
answers and option probabilities equal the CPU's; LoRA SFT trains in bfloat16 and writes its adapter; padding-free
batches give the padded loss; the in-process vLLM backend answers as hf_chat does (where vLLM imports).

Every test is skipped, with the reason, where ``torch.cuda.is_available()`` is false (CI and the CPU machines): they
run on a GPU machine, through ``bash bench/gpu_check.sh`` for instance. The tiny random model's weights are scaled up
first (as in test_pi_hf.py) so that its greedy output depends on the prompt: with its small initial weights it
repeats one token whatever the prompt, and every comparison here would be vacuous. Figures the tests measure (shares,
largest differences) are printed: ``pytest -rA`` shows them.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from persona_core.llm import make_llm
from persona_core.llm.base import GenerationConfig, Request
from persona_core.llm.hf import HFBackend
from tests.helpers import (
    MIXED_PROMPTS,
    VLLM_TINY_CONFIG,
    build_tiny_model,
    make_args,
    sharpen,
    training_flags,
    write_tailoring_dataset,
)

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA GPU here (torch.cuda.is_available() is False)"
)

PROMPTS = [*MIXED_PROMPTS, "Persona: The user is a beginner cook.", "Response 1 2"]
MIN_SAME_SHARE = 0.75
"""Greedy answers CUDA vs CPU, float32: the kernels add in other orders (differences ~1e-6), so where a random
model's two best next tokens are nearly tied one answer can take the other branch and differ from there on. A real
bug (wrong placement, masks, caches) changes nearly every answer; a tie changes few."""


@pytest.fixture(scope="module")
def sharp_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with sharpened weights, saved in float32 (a folder the backends and trainers load)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("sharp-model")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    sharpen(model)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    return folder


def requests() -> list[Request]:
    return [Request(str(i), prompt) for i, prompt in enumerate(PROMPTS)]


def answers(llm, generation: GenerationConfig, batch: list[Request] | None = None) -> dict[str, object]:
    results = {}
    batch = batch or requests()
    llm.generate(batch, lambda c: results.__setitem__(c.id, c), generation)
    assert sorted(results) == sorted(r.id for r in batch) and all(c.ok for c in results.values())
    return results


def on_cuda(model) -> bool:
    return all(p.device.type == "cuda" for p in model.parameters())


def test_hf_chat_runs_on_the_gpu_in_the_stored_dtype_or_the_one_asked(sharp_model_dir, tmp_path):
    generation = GenerationConfig(max_tokens=8)
    llm = make_llm("hf_chat", str(sharp_model_dir), batch_size=4)  # device_map auto
    assert on_cuda(llm.model) and llm.model.dtype == torch.float32
    assert all(c.usage["completion_tokens"] > 0 for c in answers(llm, generation).values())
    del llm

    # The dtype option, as bench.engines --hf_dtype passes it (make_llm takes none).
    bf16 = HFBackend(str(sharp_model_dir), batch_size=4, dtype="bfloat16")
    assert on_cuda(bf16.model) and all(p.dtype == torch.bfloat16 for p in bf16.model.parameters())
    texts = {key: c.text for key, c in answers(bf16, generation).items()}
    assert len(set(texts.values())) > 1  # the answers depend on the prompt
    del bf16

    # A model stored in bfloat16 (as bench.random_model saves it) loads so with the default dtype="auto".
    stored = tmp_path / "bf16-model"
    shutil.copytree(sharp_model_dir, stored)
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(sharp_model_dir, dtype=torch.bfloat16).save_pretrained(stored)
    llm = make_llm("hf_chat", str(stored), batch_size=4)
    assert on_cuda(llm.model) and llm.model.dtype == torch.bfloat16
    assert {key: c.text for key, c in answers(llm, generation).items()} == texts


def test_stop_strings_end_answers_on_the_gpu(sharp_model_dir):
    llm = HFBackend(str(sharp_model_dir), batch_size=4, device_map="cuda")
    full = answers(llm, GenerationConfig(max_tokens=16))
    # Requests that ran to max_tokens with text enough to cut: each gets a stop string from its own answer.
    cut = {
        key: c.text[4:6]
        for key, c in full.items()
        if c.usage["completion_tokens"] == 16 and len(c.text) >= 12
    }
    # Printable ASCII only: U+FFFD (a byte token that is no whole character) is in no token's text to stop at.
    cut = {key: stop for key, stop in cut.items() if stop.isascii() and stop.isprintable() and stop.strip()}
    assert len(cut) >= 2, {key: c.text for key, c in full.items()}
    for key, stop in cut.items():
        stopped = answers(llm, GenerationConfig(max_tokens=16, stop=(stop,)), [requests()[int(key)]])[key]
        assert stopped.text == full[key].text[: full[key].text.index(stop)]
        assert stopped.usage["completion_tokens"] < 16  # generation stopped, not only the text cut


@pytest.fixture
def full_float32():
    """No TF32: float32 products on the GPU stay float32 (the default, whatever ran before)."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(previous)


def test_greedy_float32_answers_on_the_gpu_equal_the_cpu_ones(sharp_model_dir, full_float32):
    cpu = HFBackend(str(sharp_model_dir), batch_size=4, device_map=None)
    gpu = HFBackend(str(sharp_model_dir), batch_size=4, device_map="cuda")
    assert next(cpu.model.parameters()).device.type == "cpu" and on_cuda(gpu.model)

    # The next-token logits of every prompt: equal up to float32 rounding (no ties involved here).
    largest = 0.0
    for request in requests():
        ids = cpu.tokenizer(cpu.render(request), add_special_tokens=False, return_tensors="pt").input_ids
        with torch.inference_mode():
            on_cpu = cpu.model(ids).logits[0, -1]
            on_gpu = gpu.model(ids.to("cuda")).logits[0, -1].cpu()
        largest = max(largest, float((on_cpu - on_gpu).abs().max()))
    print(f"largest next-token logit difference CUDA vs CPU (float32): {largest:.2e}")
    assert largest < 1e-3

    generation = GenerationConfig(max_tokens=24)
    on_cpu, on_gpu = answers(cpu, generation), answers(gpu, generation)
    same = sum(on_cpu[key].text == on_gpu[key].text for key in on_cpu) / len(on_cpu)
    print(f"greedy answers identical CUDA vs CPU (float32): {same:.0%} of {len(on_cpu)}")
    assert len({c.text for c in on_cpu.values()}) > 1  # the answers depend on the prompt
    assert same >= MIN_SAME_SHARE


def test_option_probabilities_on_the_gpu_match_the_cpu(sharp_model_dir, full_float32):
    options = ("1", "2")
    scores = {}
    for name, device_map in (("cpu", None), ("cuda", "cuda")):
        llm = HFBackend(str(sharp_model_dir), batch_size=3, device_map=device_map)
        results = {}
        llm.score_options(requests(), options, lambda c, r=results: r.__setitem__(c.id, c))
        assert len(results) == len(PROMPTS) and all(c.ok for c in results.values())
        scores[name] = {key: c.option_probs for key, c in results.items()}
    largest = max(
        abs(scores["cpu"][key][option] - scores["cuda"][key][option])
        for key in scores["cpu"]
        for option in options
    )
    print(f"largest option-probability difference CUDA vs CPU: {largest:.2e}")
    assert largest < 1e-4
    assert len({round(p["1"], 4) for p in scores["cpu"].values()}) > 1  # they depend on the prompt


@pytest.fixture
def data(tmp_path):
    """The hand-made splits, with training prompts of different lengths (so that a padded batch pads)."""
    folder = write_tailoring_dataset(tmp_path / "data")
    train = folder / "sft_train.jsonl"
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    for i, row in enumerate(rows):
        row["prompt"] += " Briefly." * i
    train.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def test_lora_sft_trains_on_the_gpu_in_bfloat16_and_writes_the_adapter(sharp_model_dir, data, tmp_path):
    from persona_tailoring.model import run_model
    from persona_tailoring.model.train import build_trainer

    args = make_args(tmp_path, sharp_model_dir, data)
    trainer = build_trainer(args.tailoring, args.lora, args.generator, "sft", training_flags())
    assert trainer.args.bf16 and on_cuda(trainer.model)
    base = {n: p.dtype for n, p in trainer.model.named_parameters() if "lora_" not in n}
    assert set(base.values()) == {torch.bfloat16}
    assert any("lora_" in n and p.requires_grad for n, p in trainer.model.named_parameters())
    del trainer

    flags = [
        "--base_model_name",
        str(sharp_model_dir),
        "--model_nickname",
        "tiny",
        "--dataset_name",
        "Handmade",
    ]
    flags += ["--hf_dataset_name", str(data), "--model_save_dir", str(tmp_path / "models")]
    assert run_model.main([*flags, "--method", "sft", "--stage", "train", *training_flags()]) == 0
    (summary_file,) = (tmp_path / "models").rglob("training_summary.json")
    summary = json.loads(summary_file.read_text())
    assert summary["training_config"]["bf16"] is True and summary["global_step"] > 0
    assert math.isfinite(summary["train_loss"])
    assert (summary_file.parent / "adapter_config.json").exists()
    assert (summary_file.parent / "adapter_model.safetensors").exists()


def batch_loss(
    trainer, examples: int = 2, keys=("input_ids", "attention_mask", "position_ids", "labels"), **changes
):
    """The model's loss on the trainer's own collation of its first examples, on the model's device, dropout off."""
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(examples)])
    device = next(trainer.model.parameters()).device
    batch = {key: value for key, value in batch.items() if keys is None or key in keys} | changes
    batch = {
        key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()
    }
    trainer.model.eval()
    with torch.no_grad():
        return float(trainer.model(**batch).loss)


def test_padding_free_batches_give_the_padded_loss_on_the_gpu(sharp_model_dir, data, tmp_path, full_float32):
    from persona_tailoring.model.train import build_trainer

    args = make_args(tmp_path, sharp_model_dir, data)
    padded = build_trainer(args.tailoring, args.lora, args.generator, "sft", training_flags())
    flat = build_trainer(args.tailoring, args.lora, args.generator, "sft", training_flags(padding_free=True))
    assert on_cuda(padded.model) and on_cuda(flat.model)
    flat_batch = flat.data_collator([flat.train_dataset[i] for i in range(2)])
    assert flat_batch["input_ids"].shape[0] == 1 and "attention_mask" not in flat_batch  # one row, no padding
    # As training runs them (bfloat16; the padding-free batch with every key its collator gives, the sequence
    # boundaries included): the same loss up to bfloat16 rounding.
    bf16 = (batch_loss(padded), batch_loss(flat, keys=None))
    assert bf16[1] == pytest.approx(bf16[0], rel=1e-2)
    # In float32 the comparison is sharp: the same loss, and attention that crosses examples gives another.
    padded.model.float()
    flat.model.float()
    same, cross = batch_loss(padded), batch_loss(flat)
    crossing = torch.arange(flat_batch["input_ids"].shape[1]).unsqueeze(0)
    crossed = batch_loss(flat, position_ids=crossing)
    print(
        f"SFT loss on CUDA: padded {same:.6f}, padding-free {cross:.6f}, attention crossing examples {crossed:.6f}"
    )
    assert cross == pytest.approx(same, rel=1e-4)
    assert crossed != pytest.approx(same, rel=1e-4)


def test_vllm_in_process_answers_as_hf_chat_on_the_gpu(tmp_path):
    pytest.importorskip("vllm", reason="vllm does not import in this environment (it lives in .venv-vllm)")
    folder = build_tiny_model(tmp_path / "vllm-model", **VLLM_TINY_CONFIG)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    sharpen(model)
    model.save_pretrained(folder)
    generation = GenerationConfig(max_tokens=16)
    reference = answers(HFBackend(str(folder), batch_size=4, device_map="cuda"), generation)
    options = {
        "dtype": "float32",
        "max_model_len": 1024,
        "gpu_memory_utilization": 0.2,
        "enforce_eager": True,
    }
    llm = make_llm("vllm", str(folder), engine_options=options)
    ours = answers(llm, generation)
    # A random model also picks byte tokens that are no whole UTF-8 character: transformers decodes each to U+FFFD,
    # vLLM's detokenizer withholds them; the tokens are the same, so the texts are compared without them.
    same = sum(
        ours[key].text.replace("\ufffd", "") == reference[key].text.replace("\ufffd", "")
        and ours[key].usage["completion_tokens"] == reference[key].usage["completion_tokens"]
        for key in ours
    ) / len(ours)
    print(f"vLLM greedy answers identical to hf_chat's on CUDA (float32): {same:.0%} of {len(ours)}")
    assert same >= MIN_SAME_SHARE
