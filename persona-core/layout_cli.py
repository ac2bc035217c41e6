"""The layout contract for bash: ``python -m persona_core.layout_cli QUERY [FLAGS] [NAME...]`` prints the path of
each NAME asked, one a line in the order asked (a script reads them into variables of the same names:
``scripts/lib/layout.sh``), or, without names, every name the query knows with its path::

    python -m persona_core.layout_cli pipeline --root results/pipeline --dataset Sample \\
        --pi_nickname SmolLM2-135M-Instruct --pt_nickname SmolLM2-135M-Instruct PERSONAS JUDGMENTS
    python -m persona_core.layout_cli pt_model --model_save_dir models/persona-tailoring --dataset_name Sample \\
        --model_nickname smollm2-135m --method sft --training_type chosen MERGED MERGED_DONE
    python -m persona_core.layout_cli datasets ...     # AUGMENTED, TAILORING (scripts/build_data.sh)
    python -m persona_core.layout_cli pi_results --res_dir results/persona-inference \\
        --model_nickname SmolLM2-135M-Instruct --inference_split Sample   # one path: the personas file
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from persona_core.cli import OneLineParser
from persona_core.errors import UsageError, run_cli
from persona_core.layout import (
    ADAPTER_CONFIG_FILE,
    DATASET_DICT_FILE,
    FIGURE_NAMES,
    FULL_PARTITION,
    MODEL_CONFIG_FILE,
    PERSONA_INFERENCE,
    PI_EXPERIMENTS,
    PTModelDirs,
    augmented_dataset_dir,
    comparison_dir,
    figure_paths,
    figures_dir,
    judge_files,
    nickname,
    pi_files,
    pt_output_path,
    report_path,
    results_root_dirs,
    tailoring_dataset_dir,
    win_rate_files,
)


def pipeline_paths(
    root, dataset: str, pi_nickname: str, pt_nickname: str, method: str = "dpo"
) -> dict[str, Path]:
    """Every folder and file ``scripts/pipeline.sh`` reads or checks below one results root, but the trained
    models (``pt_model_paths``, one method at a time); ``method``'s outputs are the ones judged."""
    top = results_root_dirs(root)
    pi_dir = top["pi"]
    pi = {name: pi_files(pi_dir, pi_nickname, dataset, "default", name) for name in PI_EXPERIMENTS}
    figures = figures_dir(pi_dir, "default")
    generations = top["generations"]
    with_persona = pt_output_path(generations, dataset, pt_nickname, method, "chosen", "gold-chosen")
    without_persona = pt_output_path(generations, dataset, pt_nickname, method, "chosen", "none")
    comparison = comparison_dir(
        top["judge"], dataset, pt_nickname, f"{method}-chosen-none", f"{method}-chosen-gold-chosen"
    )
    win_rate = win_rate_files(comparison)
    paths = {
        "PI_DIR": pi_dir,
        "PERSONAS": pi["persona_inference"].results,
        "ACCURACY": pi["persona_accuracy"].results,
        "PREFS": pi["persona_prefs"].results,
        "DATASETS": top["datasets"],
        "AUGMENTED": augmented_dataset_dir(top["datasets"], dataset, pi_nickname, "default"),
        "AUGMENTED_DONE": augmented_dataset_dir(top["datasets"], dataset, pi_nickname, "default")
        / DATASET_DICT_FILE,
        "TAILORING": tailoring_dataset_dir(top["datasets"], dataset),
        "MODELS": top["models"],
        "GENERATIONS": generations,
        "JUDGE_DIR": top["judge"],
        "WITH_PERSONA": with_persona,
        "WITHOUT_PERSONA": without_persona,
        "JUDGMENTS": judge_files(comparison).results,
        "REPORT": report_path(root),
    }
    paths |= {f"WIN_RATE_{ext.upper()}": path for ext, path in win_rate.items()}
    for figure in FIGURE_NAMES:
        png, pdf = figure_paths(figures, figure)
        paths |= {f"{figure.upper()}_PNG": png, f"{figure.upper()}_PDF": pdf}
    return paths


def pt_model_paths(
    model_save_dir, dataset_name: str, model_nickname: str, method: str, training_type: str
) -> dict[str, Path]:
    """One trained PT model's adapter (its config: written last), merged folder and merged config (written last)."""
    dirs = PTModelDirs.of(model_save_dir, dataset_name, model_nickname, method, training_type)
    return {
        "ADAPTER_DONE": dirs.adapter / ADAPTER_CONFIG_FILE,
        "MERGED": dirs.merged,
        "MERGED_DONE": dirs.merged / MODEL_CONFIG_FILE,
    }


def dataset_paths(
    out_dir, inference_split: str, model_nickname: str, run_name: str, new_dataset_name: str | None
) -> dict[str, Path]:
    """The augmented and tailoring dataset folders of ``scripts/build_data.sh``."""
    return {
        "AUGMENTED": augmented_dataset_dir(
            out_dir, inference_split, model_nickname, run_name, new_dataset_name
        ),
        "TAILORING": tailoring_dataset_dir(out_dir, inference_split),
    }


def parser() -> argparse.ArgumentParser:
    """One subcommand per query: each has its own required flags (some of the same name as another's, required
    there and optional here), and every query but ``pi_results`` takes the names to print."""
    strict = functools.partial(OneLineParser, allow_abbrev=False)
    parser = strict(
        prog="python -m persona_core.layout_cli", description=__doc__.split("\n\n")[0].replace("``", "")
    )
    sub = parser.add_subparsers(dest="query", required=True, parser_class=strict)
    pipeline = sub.add_parser("pipeline", help="the paths of scripts/pipeline.sh below one results root")
    for flag in ("--root", "--dataset", "--pi_nickname", "--pt_nickname"):
        pipeline.add_argument(flag, required=True)
    pipeline.add_argument("--method", default="dpo", help="the method whose outputs are judged")
    pi = sub.add_parser("pi_results", help="the final results file of one persona-inference experiment")
    for flag in ("--res_dir", "--inference_split"):
        pi.add_argument(flag, required=True)
    who = pi.add_mutually_exclusive_group(required=True)
    who.add_argument("--model_nickname")
    who.add_argument("--model_name", help="the nickname is derived from it, as run_model does")
    pi.add_argument("--run_name", default="default")
    pi.add_argument("--experiment", default=PERSONA_INFERENCE, choices=PI_EXPERIMENTS)
    pi.add_argument("--partition", default=FULL_PARTITION)
    datasets = sub.add_parser("datasets", help="AUGMENTED and TAILORING folders of scripts/build_data.sh")
    for flag in ("--out_dir", "--inference_split", "--model_nickname", "--run_name"):
        datasets.add_argument(flag, required=True)
    datasets.add_argument("--new_dataset_name")
    pt_model = sub.add_parser("pt_model", help="ADAPTER_DONE, MERGED and MERGED_DONE of one trained PT model")
    for flag in ("--model_save_dir", "--dataset_name", "--model_nickname", "--method", "--training_type"):
        pt_model.add_argument(flag, required=True)
    for query in (pipeline, datasets, pt_model):
        query.add_argument(
            "names", nargs="*", metavar="NAME", help="the paths to print (default: list them all)"
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.query == "pi_results":
        who = args.model_nickname or nickname(args.model_name)
        print(
            pi_files(
                args.res_dir, who, args.inference_split, args.run_name, args.experiment, args.partition
            ).results
        )
        return 0
    if args.query == "pipeline":
        paths = pipeline_paths(args.root, args.dataset, args.pi_nickname, args.pt_nickname, args.method)
    elif args.query == "datasets":
        paths = dataset_paths(
            args.out_dir, args.inference_split, args.model_nickname, args.run_name, args.new_dataset_name
        )
    else:
        paths = pt_model_paths(
            args.model_save_dir, args.dataset_name, args.model_nickname, args.method, args.training_type
        )
    unknown = [name for name in args.names if name not in paths]
    if unknown:
        raise UsageError(f"{args.query} has no path named {unknown[0]}: ask for one of {', '.join(paths)}")
    if args.names:
        print("\n".join(str(paths[name]) for name in args.names))
    else:
        print("\n".join(f"{name:<16} {path}" for name, path in paths.items()))
    return 0


if __name__ == "__main__":
    run_cli(main)
