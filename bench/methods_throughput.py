"""Training throughput and peak memory of every tailoring method (SFT, DPO, ORPO, SimPO, KTO), side by side in one run.

Each method trains one epoch with LoRA through the project's own trainer (``persona_tailoring.model.train.build_trainer``,
as ``run_model --stage train`` builds it) on the same preference rows: SFT on each row's prompt and chosen response;
DPO, ORPO and SimPO on the (chosen, rejected) pair; KTO on the same two responses as two unpaired examples (chosen
desirable, rejected undesirable). The data folder the run writes has the same rows in ``sft_train`` and ``dpo_train``,
and ORPO (which reads both) gets half of them from each, so every method sees the same rows once. The base model stands
in for the merged SFT model that DPO, SimPO and KTO start from.

Reported per method: trainer examples/s and preference rows/s (the first optimizer step is the warm-up, outside the
timing), the forward passes and tokens the backbone computes per step, how many of them are reference passes (the
adapter switched off: DPO's and KTO's reference log-probabilities; ORPO and SimPO have none), and peak memory during
training: the process's peak resident set (its high-water mark reset once the trainer is built) on CPU, or
``torch.cuda.max_memory_allocated`` on CUDA. Each method runs in a fresh process, so no method's memory counts
against another's; the methods alternate order each round (A B C D E, then E D C B A, ...).

Run from the repository root::

    python -m bench.methods_throughput                         # sample data, embedded SmolLM2-135M-Instruct
    python -m bench.methods_throughput --rows 8 --batch_size 2 --json bench-methods.json
    python -m bench.methods_throughput --model_name /path/to/tiny-model --methods orpo simpo
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

from persona_core.cli import parse
from persona_core.data import load_splits
from persona_core.embedded import EMBEDDED_MODEL_NAME, REPO_ROOT, resolve_model_name
from persona_core.errors import UsageError
from persona_tailoring.model import train
from persona_tailoring.model.arguments import GeneratorArguments, LoraArguments, TailoringArguments
from persona_tailoring.model.methods import METHODS

if not __package__:  # run as a path (python bench/x.py): `bench` imports from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.common import finish, load_average  # noqa: E402 (after the path above)
from bench.pt_throughput import step_clock  # noqa: E402

SAMPLE_DATA = REPO_ROOT / "data" / "sample-tailoring"
ALL_METHODS = ("sft", "dpo", "orpo", "simpo", "kto")


@dataclass
class MethodsThroughputArguments:
    """The data, the model, the methods and how each trains."""

    hf_dataset_name: str = field(
        default=str(SAMPLE_DATA), metadata={"help": "Tailoring splits; the rows come from dpo_train."}
    )
    dataset_name: str = field(default="Sample", metadata={"help": "Dataset name (primers, system persona)."})
    model_name: str = field(default=EMBEDDED_MODEL_NAME, metadata={"help": "Model every method trains."})
    methods: list[str] = field(
        default_factory=lambda: list(ALL_METHODS), metadata={"help": "Methods to time."}
    )
    rows: int = field(default=12, metadata={"help": "Preference rows every method trains on (one epoch)."})
    batch_size: int = field(default=4, metadata={"help": "per_device_train_batch_size of every method."})
    max_length: int = field(default=256, metadata={"help": "Maximum tokens per training sequence."})
    rounds: int = field(
        default=1, metadata={"help": "Times each method runs; the order alternates each round."}
    )
    threads: int = field(
        default=1,
        metadata={"help": "torch CPU threads (0: torch's own choice); on busy cores more threads stall."},
    )
    device_map: str = field(default="auto", metadata={"help": "Device map of the model (CUDA when present)."})
    json: str | None = field(default=None, metadata={"help": "Also write the figures to this JSON file."})

    def check(self) -> None:
        unknown = [m for m in self.methods if m not in ALL_METHODS]
        if unknown:
            raise UsageError(
                f"--methods: unknown {', '.join(unknown)} (choose from {', '.join(ALL_METHODS)})"
            )
        if self.batch_size < 2:
            raise UsageError(
                "--batch_size must be 2 or more (KTO's KL term needs other examples in the batch)"
            )
        if self.rows < 2 * self.batch_size or self.rows % 2:
            raise UsageError(
                f"--rows ({self.rows}) must be even and at least twice --batch_size ({self.batch_size}): the first "
                "step is the warm-up, and ORPO reads half the rows from each of two splits"
            )
        if self.rounds <= 0 or self.max_length <= 0 or self.threads < 0:
            raise UsageError("--rounds and --max_length must be positive, --threads 0 or more")


def same_rows_folder(source: str, rows: int, folder: Path, method: str) -> Path:
    """A splits folder holding the first ``rows`` rows of ``source``'s dpo_train as sft_train and as dpo_train; for
    ORPO, which reads both, the first half as sft_train and the second as dpo_train."""
    splits = load_splits(source)
    chosen = train.pick_split(splits, "dpo_train", source, rows)
    if len(chosen) < rows:
        raise UsageError(f"dpo_train of {source} has {len(chosen)} rows, fewer than --rows {rows}")
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(row) + "\n" for row in chosen]
    half = rows // 2 if method == "orpo" else 0
    parts = {"sft_train": lines[:half] or lines, "dpo_train": lines[half:]}
    for split, part in parts.items():
        (folder / f"{split}.jsonl").write_text("".join(part), encoding="utf-8")
    return folder


def memory_kb(field_name: str) -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field_name}:\s+(\d+) kB", status).group(1))


def reset_peak_memory() -> bool:
    """Reset the process's resident high-water mark (Linux); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def count_forwards(trainer) -> dict:
    """Count the backbone's forward passes and tokens, and those run with the LoRA adapter switched off."""
    counts = {"forwards": 0, "tokens": 0, "reference_forwards": 0, "reference_tokens": 0}
    peft_model = trainer.model
    lora_layer = next(m for m in peft_model.modules() if hasattr(m, "lora_A") and len(m.lora_A))

    def count(_module, _args, kwargs):
        ids = kwargs.get("input_ids")
        tokens = ids.numel() if ids is not None else kwargs["inputs_embeds"].shape[:2].numel()
        counts["forwards"] += 1
        counts["tokens"] += tokens
        if lora_layer.disable_adapters:
            counts["reference_forwards"] += 1
            counts["reference_tokens"] += tokens

    peft_model.get_base_model().base_model.register_forward_pre_hook(count, with_kwargs=True)
    return counts


def measure(method: str, bench_fields: dict) -> dict:
    """One epoch of ``method`` in this (fresh) process: timing, forward counts, peak memory."""
    import torch
    from transformers import PrinterCallback, ProgressCallback

    bench = MethodsThroughputArguments(**bench_fields)
    if bench.threads:
        torch.set_num_threads(bench.threads)
    with tempfile.TemporaryDirectory(prefix="methods-bench-") as folder:
        data = same_rows_folder(bench.hf_dataset_name, bench.rows, Path(folder) / "data", method)
        tailoring = TailoringArguments(
            base_model_name=bench.model_name,
            model_nickname="bench",
            dataset_name=bench.dataset_name,
            hf_dataset_name=str(data),
            model_save_dir=folder,
            results_save_dir=folder,
            max_train_samples=bench.rows,
            max_eval_samples=0,
        )
        generator = GeneratorArguments(device_map=bench.device_map)
        merged = train.model_dirs(
            tailoring, "sft"
        ).merged  # the base model stands in for the merged SFT model
        merged.parent.mkdir(parents=True)
        merged.symlink_to(Path(resolve_model_name(bench.model_name)).resolve(), target_is_directory=True)
        flags = ["--num_train_epochs", "1", "--per_device_train_batch_size", str(bench.batch_size)]
        flags += [
            "--gradient_accumulation_steps",
            "1",
            "--max_length",
            str(bench.max_length),
            "--save_strategy",
            "no",
        ]
        trainer = train.build_trainer(tailoring, LoraArguments(), generator, method, flags)
        for callback in (ProgressCallback, PrinterCallback):
            trainer.remove_callback(callback)
        clock = step_clock(method)
        trainer.add_callback(clock)
        forwards = count_forwards(trainer)
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start_rss = memory_kb("VmRSS")
        reset = reset_peak_memory()
        result = trainer.train()
        peak_rss = memory_kb("VmHWM")
        examples = len(trainer.train_dataset)
    steps = trainer.state.global_step
    timed_examples = examples - bench.batch_size  # the first step is the warm-up
    seconds = clock.stamps[-1] - clock.stamps[0]
    return {
        "method": method,
        "examples": examples,
        "rows": bench.rows,
        "steps": steps,
        "seconds": seconds,
        "timed_examples": timed_examples,
        "timed_rows": timed_examples * bench.rows / examples,
        "forwards_per_step": forwards["forwards"] / steps,
        "reference_forwards_per_step": forwards["reference_forwards"] / steps,
        "reference_token_share": forwards["reference_tokens"] / forwards["tokens"],
        "tokens_per_step": forwards["tokens"] / steps,
        "train_loss": result.training_loss,
        "rss_at_start_mb": start_rss / 1024,
        "peak_rss_mb": peak_rss / 1024,
        "peak_reset": reset,
        "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "device": str(trainer.model.device),
        "threads": torch.get_num_threads(),
    }


def run_all(bench: MethodsThroughputArguments) -> dict[str, dict]:
    """Every method in its own fresh process, the order alternating each round; timings summed over rounds."""
    totals: dict[str, dict] = {}
    context = get_context("spawn")
    methods = tuple(bench.methods)
    for round_index in range(bench.rounds):
        order = methods if round_index % 2 == 0 else methods[::-1]
        for method in order:
            with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                figures = pool.submit(measure, method, asdict(bench)).result()
            print(
                f"  round {round_index + 1}: {method}: {figures['timed_examples'] / figures['seconds']:.2f} examples/s, "
                f"peak {figures['peak_rss_mb']:.0f} MB"
            )
            if method in totals:
                for key in ("seconds", "timed_examples", "timed_rows"):
                    totals[method][key] += figures[key]
                totals[method]["peak_rss_mb"] = max(totals[method]["peak_rss_mb"], figures["peak_rss_mb"])
            else:
                totals[method] = figures
    return totals


def summarize(totals: dict[str, dict]) -> dict[str, dict]:
    table = {}
    sft_rate = totals["sft"]["timed_rows"] / totals["sft"]["seconds"] if "sft" in totals else None
    for method, t in totals.items():
        rows_per_s = t["timed_rows"] / t["seconds"]
        table[method] = {
            "examples_per_s": round(t["timed_examples"] / t["seconds"], 3),
            "rows_per_s": round(rows_per_s, 3),
            "rows_per_s_vs_sft": round(rows_per_s / sft_rate, 2) if sft_rate else None,
            "examples": t["examples"],
            "steps": t["steps"],
            "forwards_per_step": round(t["forwards_per_step"], 2),
            "reference_forwards_per_step": round(t["reference_forwards_per_step"], 2),
            "reference_token_share": round(t["reference_token_share"], 3),
            "tokens_per_step": round(t["tokens_per_step"], 1),
            "peak_rss_mb": round(t["peak_rss_mb"]),
            "training_rss_over_start_mb": round(t["peak_rss_mb"] - t["rss_at_start_mb"]),
            "cuda_peak_mb": None if t["cuda_peak_mb"] is None else round(t["cuda_peak_mb"]),
            "reference_free": METHODS[method].reference_free,
            "train_loss": round(t["train_loss"], 4),
        }
    return table


def print_table(table: dict[str, dict]) -> None:
    header = (
        "method",
        "ex/s",
        "rows/s",
        "vs SFT",
        "fwd/step",
        "ref fwd/step",
        "ref tokens",
        "peak RSS",
        "+train",
    )
    lines = [header]
    for method, t in table.items():
        lines.append(
            (
                method,
                f"{t['examples_per_s']}",
                f"{t['rows_per_s']}",
                f"{t['rows_per_s_vs_sft']}x" if t["rows_per_s_vs_sft"] is not None else "",
                f"{t['forwards_per_step']}",
                f"{t['reference_forwards_per_step']}",
                f"{t['reference_token_share']:.0%}",
                f"{t['peak_rss_mb']} MB" + (f" (CUDA {t['cuda_peak_mb']} MB)" if t["cuda_peak_mb"] else ""),
                f"{t['training_rss_over_start_mb']} MB",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def main(argv: list[str] | None = None) -> int:
    (bench,) = parse((MethodsThroughputArguments,), argv, description=__doc__.split("\n\n")[0])
    start, load_start = time.perf_counter(), load_average()
    print(f"{len(bench.methods)} methods x {bench.rounds} round(s), each in a fresh process:")
    totals = run_all(bench)
    table = summarize(totals)
    figures = {
        "data": bench.hf_dataset_name,
        "model": bench.model_name,
        "rows": bench.rows,
        "batch_size": bench.batch_size,
        "max_length": bench.max_length,
        "rounds": bench.rounds,
        "threads": next(iter(totals.values()))["threads"],
        "device": next(iter(totals.values()))["device"],
        "methods": table,
        "load_average": {"start": load_start, "end": load_average()},
        "wall_s": round(time.perf_counter() - start, 1),
    }
    print(
        f"\n{bench.rows} preference rows of {bench.hf_dataset_name}, model {bench.model_name}, batch {bench.batch_size}, "
        f"max_length {bench.max_length}, one epoch, LoRA, {figures['threads']} thread(s) on {figures['device']}"
    )
    print_table(table)
    print(
        "ex/s: the trainer's own examples (SFT: prompt + chosen; DPO/ORPO/SimPO: a pair; KTO: one response, two per "
        "row); rows/s: preference rows; fwd/step: backbone forward passes per optimizer step, ref: those with the "
        "adapter off (reference log-probabilities); peak RSS: the process's high-water mark during training "
        "(+train: above its size once the trainer was built)"
    )
    return finish(figures, bench.json)


if __name__ == "__main__":
    from persona_core.errors import run_cli

    run_cli(main)
