"""Persona-tailoring throughput, measured side by side in one run on the embedded SmolLM2-135M-Instruct.

1. Generation: batched vs one-at-a-time greedy generation (the seed generated one prompt at a time) through the
   public API (``load_generator`` + ``generate_completions``), on ``Prompt: ...\\nPersona: ...\\nResponse:`` inputs
   with gold chosen personas. The base model stands in for a merged SFT/DPO model (same architecture and size).
   Reports tokens/s of each, their ratio, and the share of prompts with the same output.
2. Training: SFT (or, with ``--training_method dpo``, DPO) with LoRA through the project's own trainer
   (``persona_tailoring.model.train.build_trainer``, as ``run_model --stage train`` builds it) at the paper's
   per-device batch size 1 vs a larger one, padded and padding-free (``--padding_free True``: each forward pass on
   one row of its examples' real tokens; TRL's for SFT, ``persona_tailoring.model.packing`` for DPO), on the same
   examples. Reports examples/s and real (unpadded) tokens/s of each, the ratios, and the share of the tokens the
   model computed on that were padding. For DPO the base model stands in for the merged SFT model.

Model loading, tokenization and a warm-up (one generation batch; each run's first optimizer step) are outside the
timings. The variants alternate round by round (A B, then B A, ...), so a machine shared with other jobs slows both
alike; the load average at the start and the end is printed with the table.

Data: the test and sft_train (dpo_train) splits of $PERSONA_PAPER_DATA/persona-tailoring-BeaverTails (default ../shared/data) when present, else
data/sample-tailoring. Run from the repository root::

    python -m bench.pt_throughput                                   # defaults: ~6 minutes on 2 busy CPU cores
    python -m bench.pt_throughput --rounds 2 --threads 0 --json bench-pt.json     # A B B A; torch's thread count
    python -m bench.pt_throughput --skip_training --prompts 64 --batch_size 32 --max_new_tokens 256   # GPU
    python -m bench.pt_throughput --skip_generation --train_examples 64 --train_batch_size 16
    python -m bench.pt_throughput --skip_generation --training_method dpo          # DPO padded vs padding-free
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from persona_core.arguments import positive
from persona_core.cli import parse
from persona_core.data import load_splits
from persona_core.embedded import EMBEDDED_MODEL_NAME, REPO_ROOT, resolve_model_name
from persona_core.errors import UsageError, run_cli
from persona_core.layout import paper_data_dir
from persona_tailoring.model.arguments import (
    GeneratorArguments,
    LoraArguments,
    TailoringArguments,
    tailored_generation,
)
from persona_tailoring.model.generate import generate_completions, load_generator
from persona_tailoring.model.templates import InferenceType, PromptStyle, TrainingType, inference_personas
from persona_tailoring.model.train import build_trainer, model_dirs, pick_split

if not __package__:  # run as a path (python bench/x.py): `bench` imports from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.common import finish, load_average  # noqa: E402 (after the path above)

PAPER_DATA = paper_data_dir() / "persona-tailoring-BeaverTails"
SAMPLE_DATA = REPO_ROOT / "data" / "sample-tailoring"
PAPER_TRAIN_BATCH_SIZE = 1


@dataclass
class SharedArguments:
    """The data, the model and how often each variant runs, for both parts."""

    hf_dataset_name: str | None = field(
        default=None,
        metadata={"help": "Tailoring splits (default: BeaverTails paper data if present, else the sample)."},
    )
    dataset_name: str | None = field(
        default=None,
        metadata={"help": "Dataset name for primers (default: BeaverTails or Sample, matching the data)."},
    )
    model_name: str = field(
        default=EMBEDDED_MODEL_NAME, metadata={"help": "Model to generate from and train."}
    )
    device_map: str = field(default="auto", metadata={"help": "Device map of the model (CUDA when present)."})
    threads: int = field(
        default=1,
        metadata={
            "help": "torch CPU threads (0: torch's own choice); on cores busy with other jobs, more threads stall."
        },
    )
    rounds: int = field(
        default=1, metadata={"help": "Times each variant runs; the order alternates each round."}
    )
    json: str | None = field(default=None, metadata={"help": "Also write the figures to this JSON file."})

    def check(self) -> None:
        if self.threads < 0:
            raise UsageError("--threads must be 0 (torch's choice) or positive")
        positive(self, "rounds")

    def data_source(self) -> tuple[str, str]:
        """(splits folder or Hub id, dataset name) of the run."""
        path = self.hf_dataset_name or str(PAPER_DATA if PAPER_DATA.exists() else SAMPLE_DATA)
        default_name = "BeaverTails" if path == str(PAPER_DATA) else "Sample"
        return path, self.dataset_name or default_name


@dataclass
class GenerationBenchArguments:
    """The generation part: batched vs one prompt at a time."""

    prompts: int = field(default=16, metadata={"help": "Test prompts generated per variant."})
    batch_size: int = field(default=16, metadata={"help": "Prompts per batch in the batched variant."})
    max_new_tokens: int = field(default=64, metadata={"help": "Maximum new tokens per response."})
    skip_generation: bool = field(default=False, metadata={"help": "Skip the generation part."})

    def check(self) -> None:
        positive(self, "prompts", "batch_size", "max_new_tokens")


@dataclass
class TrainingBenchArguments:
    """The training part: the paper's batch size vs a larger one, padded and padding-free."""

    training_method: str = field(default="sft", metadata={"help": "Training timed: sft or dpo."})
    train_examples: int = field(
        default=24, metadata={"help": "Training examples per variant (the first step is the warm-up)."}
    )
    train_batch_size: int = field(
        default=8, metadata={"help": "per_device_train_batch_size of the larger variant."}
    )
    max_length: int = field(default=256, metadata={"help": "Maximum tokens per training sequence."})
    skip_training: bool = field(default=False, metadata={"help": "Skip the training part."})

    def check(self) -> None:
        if self.training_method not in ("sft", "dpo"):
            raise UsageError(f"--training_method must be sft or dpo, not '{self.training_method}'")
        positive(self, "train_examples", "train_batch_size", "max_length")
        if self.train_examples < 2 * self.train_batch_size:
            raise UsageError(
                f"--train_examples ({self.train_examples}) must be at least twice --train_batch_size "
                f"({self.train_batch_size}): the first step is the warm-up"
            )


def round_orders(variants: tuple, rounds: int) -> list[tuple]:
    """A B, B A, A B, ...: each variant runs first as often as the other (within one)."""
    return [variants if r % 2 == 0 else variants[::-1] for r in range(rounds)]


# --- generation ---------------------------------------------------------------------------------------------------


def gold_chosen_inputs(path: str, dataset_name: str, count: int) -> tuple[list[str], list[str]]:
    """Model inputs (gold chosen persona, as for ``--inference_type gold-chosen``) and primers of the first test rows."""
    test = pick_split(load_splits(path), "test", path, count)
    personas = inference_personas(test, InferenceType.gold_chosen, dataset_name, "test")
    style = PromptStyle.for_run(TrainingType.chosen, dataset_name)
    prompts = [style.model_input(row["prompt"], persona) for row, persona in zip(test, personas, strict=True)]
    prefills = [f" {p}" if (p := style.prefix_for(row["prompt"])) else "" for row in test]
    return prompts, prefills


def bench_generation(
    shared: SharedArguments, bench: GenerationBenchArguments, path: str, dataset_name: str
) -> dict:
    import torch

    prompts, prefills = gold_chosen_inputs(path, dataset_name, bench.prompts)
    llm = load_generator(
        shared.model_name, GeneratorArguments(batch_size=bench.batch_size, device_map=shared.device_map)
    )
    generation = tailored_generation(max_tokens=bench.max_new_tokens)
    generate_completions(
        llm, prompts[:2], generation, prefills[:2]
    )  # warm-up: kernels, allocator, stop strings
    seconds = {"single": 0.0, "batched": 0.0}
    tokens = {"single": 0, "batched": 0}
    texts = {}
    for order in round_orders(("batched", "single"), shared.rounds):
        for variant in order:
            llm.batch_size = 1 if variant == "single" else bench.batch_size
            start = time.perf_counter()
            completions = generate_completions(llm, prompts, generation, prefills)
            seconds[variant] += time.perf_counter() - start
            failed = [c for c in completions if not c.ok]
            if failed:
                raise RuntimeError(f"{len(failed)} generations failed (first: {failed[0].error})")
            tokens[variant] += sum(c.usage["completion_tokens"] for c in completions)
            texts.setdefault(variant, [c.text for c in completions])
    rate = {v: tokens[v] / seconds[v] for v in seconds}
    same = sum(a == b for a, b in zip(texts["batched"], texts["single"], strict=True))
    return {
        "data": path,
        "model": shared.model_name,
        "device": str(llm.model.device),
        "dtype": str(llm.model.dtype),
        "threads": torch.get_num_threads(),
        "rounds": shared.rounds,
        "prompts": len(prompts),
        "batch_size": bench.batch_size,
        "max_new_tokens": bench.max_new_tokens,
        "prompt_tokens_mean": round(sum(len(llm.tokenizer(p).input_ids) for p in prompts) / len(prompts), 1),
        "completion_tokens_mean": round(tokens["single"] / shared.rounds / len(prompts), 1),
        "single_s": round(seconds["single"], 2),
        "batched_s": round(seconds["batched"], 2),
        "single_tokens_per_s": round(rate["single"], 2),
        "batched_tokens_per_s": round(rate["batched"], 2),
        "speedup_tokens_per_s": round(rate["batched"] / rate["single"], 2),
        "speedup_wall": round(seconds["single"] / seconds["batched"], 2),
        "same_output": round(same / len(prompts), 4),
    }


# --- training -----------------------------------------------------------------------------------------------------


def step_clock(method: str):
    """A TrainerCallback stamping the end of every optimizer step (the trainer's own bar and log lines removed)."""
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self):
            self.stamps: list[float] = []
            self.bar = None

        def on_train_begin(self, training_args, state, control, **kwargs):
            self.bar = tqdm(
                total=state.max_steps,
                desc=f"{method.upper()} batch {training_args.per_device_train_batch_size}",
                leave=False,
            )

        def on_step_end(self, training_args, state, control, **kwargs):
            self.stamps.append(time.perf_counter())
            self.bar.update(1)

        def on_train_end(self, training_args, state, control, **kwargs):
            self.bar.close()

    return StepClock()


def time_training(
    shared: SharedArguments,
    bench: TrainingBenchArguments,
    path: str,
    dataset_name: str,
    batch_size: int,
    padding_free: bool = False,
) -> dict:
    """One epoch over the first ``train_examples`` rows, built as ``run_model --stage train`` builds it.

    Every variant gets the same rows in the same (seeded) order; the first optimizer step is the warm-up.
    """
    from transformers import PrinterCallback, ProgressCallback

    with tempfile.TemporaryDirectory(prefix="pt-bench-") as folder:
        tailoring = TailoringArguments(
            base_model_name=shared.model_name,
            model_nickname="bench",
            dataset_name=dataset_name,
            hf_dataset_name=path,
            model_save_dir=folder,
            results_save_dir=folder,
            max_train_samples=bench.train_examples,
            max_eval_samples=0,
        )
        flags = [
            "--num_train_epochs",
            "1",
            "--per_device_train_batch_size",
            str(batch_size),
            "--gradient_accumulation_steps",
            "1",
            "--max_length",
            str(bench.max_length),
            *(["--padding_free", "True"] if padding_free else []),
        ]
        method = bench.training_method
        if method == "dpo":  # the base model stands in for the merged SFT model DPO starts from
            merged = model_dirs(tailoring, "sft").merged
            merged.parent.mkdir(parents=True)
            merged.symlink_to(Path(resolve_model_name(shared.model_name)).resolve(), target_is_directory=True)
        generator = GeneratorArguments(device_map=shared.device_map)
        trainer = build_trainer(tailoring, LoraArguments(), generator, method, flags)
        kept = len(
            trainer.train_dataset
        )  # SFT rows whose completion max_length cuts off entirely are dropped
        if kept < 2 * batch_size:
            raise UsageError(
                f"only {kept} {method} examples of {path} fit (need two steps of batch {batch_size}): raise "
                "--train_examples or --max_length"
            )
        for callback in (ProgressCallback, PrinterCallback):
            trainer.remove_callback(callback)
        clock = step_clock(method)
        trainer.add_callback(clock)
        real = count_real_tokens(trainer)
        computed = count_computed_tokens(trainer)
        result = trainer.train()
    return {
        "seconds": clock.stamps[-1] - clock.stamps[0],
        "examples": kept - batch_size,
        "real_tokens": sum(real[1:]),  # the timed steps' (the first batch is the warm-up's)
        "tokens": sum(real) / kept,  # one epoch: every example once (DPO: prompt+chosen and prompt+rejected)
        "padding_share": 1 - computed["real"] / computed["total"],
        "train_loss": result.training_loss,
    }


def count_real_tokens(trainer) -> list[int]:
    """Wrap the trainer's collator to count the real (unpadded) tokens of each batch it builds, in order."""
    counts = []
    collate = trainer.data_collator

    def counting_collate(examples):
        batch = collate(examples)
        mask = batch.get("attention_mask")  # padding-free SFT batches have none: every token is real
        counts.append(int(mask.sum()) if mask is not None else batch["input_ids"].numel())
        return batch

    trainer.data_collator = counting_collate
    return counts


def count_computed_tokens(trainer) -> dict:
    """Count the tokens every forward pass of the model's backbone runs on, and how many of them are real."""
    counts = {"real": 0, "total": 0}

    def count(_module, _args, kwargs):
        ids, mask = kwargs["input_ids"], kwargs.get("attention_mask")
        counts["total"] += ids.numel()
        counts["real"] += int(mask.sum()) if mask is not None else ids.numel()

    trainer.model.get_base_model().base_model.register_forward_pre_hook(count, with_kwargs=True)
    return counts


def bench_training(
    shared: SharedArguments, bench: TrainingBenchArguments, path: str, dataset_name: str
) -> dict:

    import torch

    sizes = {
        "paper": PAPER_TRAIN_BATCH_SIZE,
        "larger": bench.train_batch_size,
        "padding_free": bench.train_batch_size,
    }
    seconds = {v: 0.0 for v in sizes}
    examples = {v: 0 for v in sizes}
    real_tokens = {v: 0 for v in sizes}
    padding, tokens = {}, 0.0
    for order in round_orders(("larger", "padding_free", "paper"), shared.rounds):
        for variant in order:
            timed = time_training(
                shared, bench, path, dataset_name, sizes[variant], variant == "padding_free"
            )
            seconds[variant] += timed["seconds"]
            examples[variant] += timed["examples"]
            real_tokens[variant] += timed["real_tokens"]
            padding[variant], tokens = timed["padding_share"], timed["tokens"]
    rate = {v: examples[v] / seconds[v] for v in sizes}
    token_rate = {v: real_tokens[v] / seconds[v] for v in sizes}
    return {
        "data": path,
        "model": shared.model_name,
        "method": bench.training_method,
        "threads": torch.get_num_threads(),
        "rounds": shared.rounds,
        "examples": bench.train_examples,
        "max_length": bench.max_length,
        "tokens_per_example": round(tokens, 1),
        "paper_batch_size": sizes["paper"],
        "larger_batch_size": sizes["larger"],
        "paper_timed_examples": examples["paper"] // shared.rounds,
        "larger_timed_examples": examples["larger"] // shared.rounds,
        "paper_s": round(seconds["paper"], 2),
        "larger_s": round(seconds["larger"], 2),
        "paper_examples_per_s": round(rate["paper"], 3),
        "larger_examples_per_s": round(rate["larger"], 3),
        "speedup_examples_per_s": round(rate["larger"] / rate["paper"], 2),
        "larger_padding_share": round(padding["larger"], 3),
        "padding_free_s": round(seconds["padding_free"], 2),
        "padding_free_examples_per_s": round(rate["padding_free"], 3),
        "padding_free_padding_share": round(padding["padding_free"], 3),
        "timed_real_tokens": {v: real_tokens[v] // shared.rounds for v in sizes},
        "real_tokens_per_s": {v: round(token_rate[v], 1) for v in sizes},
        "padding_free_vs_padded_tokens_per_s": round(token_rate["padding_free"] / token_rate["larger"], 2),
    }


def print_table(figures: dict) -> None:
    rows = [("part", "variant", "rate", "seconds", "ratio")]
    if "generation" in figures:
        g = figures["generation"]
        rows += [
            ("generation", "one at a time", f"{g['single_tokens_per_s']} tok/s", f"{g['single_s']}", ""),
            (
                "generation",
                f"batch {g['batch_size']}",
                f"{g['batched_tokens_per_s']} tok/s",
                f"{g['batched_s']}",
                f"{g['speedup_tokens_per_s']}x",
            ),
        ]
    if "training" in figures:
        t = figures["training"]
        tokens, part = t["real_tokens_per_s"], f"{t['method'].upper()}+LoRA"
        rows += [
            (
                part,
                f"batch {t['paper_batch_size']} (paper)",
                f"{t['paper_examples_per_s']} ex/s, {tokens['paper']} tok/s",
                f"{t['paper_s']}",
                "",
            ),
            (
                part,
                f"batch {t['larger_batch_size']} padded",
                f"{t['larger_examples_per_s']} ex/s, {tokens['larger']} tok/s",
                f"{t['larger_s']}",
                f"{t['speedup_examples_per_s']}x",
            ),
            (
                part,
                f"batch {t['larger_batch_size']} padding-free",
                f"{t['padding_free_examples_per_s']} ex/s, {tokens['padding_free']} tok/s",
                f"{t['padding_free_s']}",
                f"{t['padding_free_vs_padded_tokens_per_s']}x padded",
            ),
        ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def main(argv: list[str] | None = None) -> int:
    shared, generation_bench, training_bench = parse(
        (SharedArguments, GenerationBenchArguments, TrainingBenchArguments),
        argv,
        description=__doc__.split("\n\n")[0],
    )
    path, dataset_name = shared.data_source()
    if shared.threads:
        import torch

        torch.set_num_threads(shared.threads)
    start, load_start = time.perf_counter(), load_average()
    figures: dict = {}
    if not generation_bench.skip_generation:
        figures["generation"] = bench_generation(shared, generation_bench, path, dataset_name)
    if not training_bench.skip_training:
        figures["training"] = bench_training(shared, training_bench, path, dataset_name)
    figures["load_average"] = {"start": load_start, "end": load_average(), "cpus": os.cpu_count()}
    figures["wall_s"] = round(time.perf_counter() - start, 1)
    print(
        f"\n{dataset_name} data ({path}), model {shared.model_name}, {shared.rounds} round(s) per variant, order alternating"
    )
    print_table(figures)
    if "generation" in figures:
        g = figures["generation"]
        print(
            f"generation: {g['prompts']} prompts (~{g['prompt_tokens_mean']} tokens in, ~{g['completion_tokens_mean']} out, "
            f"max {g['max_new_tokens']}) on {g['device']} {g['dtype']}, {g['threads']} threads; "
            f"greedy outputs identical batched vs one at a time: {g['same_output']:.0%}"
        )
    if "training" in figures:
        t = figures["training"]
        print(
            f"training: the same {t['examples']} {t['method'].upper()} examples per variant and round "
            f"(~{t['tokens_per_example']} tokens each{' with both responses' if t['method'] == 'dpo' else ''}, "
            f"max_length {t['max_length']}), LoRA, {t['threads']} threads; first step excluded as warm-up, so "
            f"{t['paper_timed_examples']} vs {t['larger_timed_examples']} examples timed; padding in the batch "
            f"{t['larger_batch_size']} steps: {t['larger_padding_share']:.0%} of tokens padded, "
            f"{t['padding_free_padding_share']:.0%} padding-free; tok/s counts real (unpadded) tokens"
        )
    return finish(figures, shared.json)


if __name__ == "__main__":
    run_cli(main)
