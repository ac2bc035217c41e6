"""Probability vs text verdicts of the pairwise judge, side by side in one run, on the same pairs.

The pairs are ``bench/fixtures/obvious_pairs.jsonl`` (hand-written for this toolkit): per prompt a persona, a
response that plainly serves it and one that plainly does not. The good response is the "test" side, the bad one
the "base" side, and every pair is judged in both orders by ``run_judge`` (no verdict cache, no retries, so each
mode's time is its own). Reported per mode:

- seconds per verdict (the judge's generation or forward passes only, from the run records), and their ratio;
- accuracy: the share of verdicts (each order apart) that pick the good response, and of pairs won in both orders;
- position bias: the share of verdicts answering "A" (the first response), 0.5 for an unbiased judge;
- invalid verdicts (text mode; probability verdicts are never invalid).

Run from the repository root::

    python -m bench.judge_verdicts                                   # the embedded model: ~6 minutes on 2 cores
    python -m bench.judge_verdicts --text_max_tokens 256 --pairs 4   # shorter
    python -m bench.judge_verdicts --judge_model_name /path/to/prometheus-7b-v2.0
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from persona_core.cli import parse
from persona_core.embedded import EMBEDDED_MODEL_NAME
from persona_core.errors import run_cli
from persona_core.io import read_records
from persona_tailoring.evaluation import run_judge

if not __package__:  # run as a path (python bench/x.py): `bench` imports from the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from bench.common import finish  # noqa: E402 (after the path above)

FIXTURE = Path(__file__).parent / "fixtures" / "obvious_pairs.jsonl"
MODES = ("probability", "text")


@dataclass
class JudgeVerdictsArguments:
    """The judge, the pairs and the rubrics."""

    judge_model_name: str = field(default=EMBEDDED_MODEL_NAME, metadata={"help": "Local judge model."})
    pairs: int | None = field(default=None, metadata={"help": "Use only the first N pairs of the fixture."})
    metrics: list[str] = field(
        default_factory=lambda: ["personalization", "response_quality"], metadata={"help": "Rubrics."}
    )
    text_max_tokens: int = field(
        default=1024,
        metadata={"help": "Text verdicts: feedback budget (run_judge's default, prometheus-eval's 1024)."},
    )
    batch_size: int = field(default=16, metadata={"help": "Requests decoding together."})
    json: str | None = field(default=None, metadata={"help": "Also write the figures to this JSON file."})


def write_sides(folder: Path, rows: list[dict]) -> tuple[Path, Path]:
    """PT-output files: the bad responses as the base side (no persona), the good ones as the test side."""
    base = [{"id": r["id"], "prompt": r["prompt"], "persona": "", "response": r["bad"]} for r in rows]
    test = [
        {"id": r["id"], "prompt": r["prompt"], "persona": r["persona"], "response": r["good"]} for r in rows
    ]
    paths = folder / "bad.jsonl", folder / "good.jsonl"
    for path, records in zip(paths, (base, test), strict=True):
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return paths


def judge(judge_flags: list[str], mode: str, base: Path, test: Path, out: Path) -> dict:
    """One run_judge run in ``mode`` on the two sides (``judge_flags``: the judge model and its settings)."""
    argv = ["--base_file", str(base), "--test_file", str(test), "--output_dir", str(out), "--verdict", mode]
    if run_judge.main([*argv, *judge_flags]) != 0:
        raise SystemExit(f"the {mode} judge run failed")
    (record_path,) = out.rglob("judge.run.json")
    record = json.loads(record_path.read_text())
    rows = read_records(next(out.rglob("judgments.jsonl")))
    verdicts = [row[order] for row in rows for order in ("base_first", "test_first")]
    valid = [v for v in verdicts if v["verdict"] is not None]
    seconds = record["stats"]["first_attempts"]["seconds"]
    return {
        "verdicts": len(verdicts),
        "seconds": seconds,
        "seconds_per_verdict": round(seconds / len(verdicts), 4),
        "invalid": len(verdicts) - len(valid),
        "accuracy": round(sum(v["verdict"] == "test" for v in valid) / len(valid), 4) if valid else None,
        "pairs_won_both_orders": round(sum(r["outcome"] == "test" for r in rows) / len(rows), 4),
        "first_position_share": round(sum(v["raw_verdict"] == "A" for v in valid) / len(valid), 4)
        if valid
        else None,
    }


def main(argv: list[str] | None = None) -> int:
    (args,) = parse((JudgeVerdictsArguments,), argv, description=__doc__.split("\n\n")[0])
    rows = read_records(FIXTURE)[: args.pairs]
    figures = {"judge": args.judge_model_name, "pairs": len(rows), "metrics": args.metrics}
    judge_flags = ["--judge_model_name", args.judge_model_name, "--metrics", *args.metrics]
    judge_flags += ["--batch_size", str(args.batch_size), "--verdict_retries", "0"]
    judge_flags += ["--max_tokens", str(args.text_max_tokens)]
    with tempfile.TemporaryDirectory() as tmp:
        base, test = write_sides(Path(tmp), rows)
        for mode in MODES:
            figures[mode] = judge(judge_flags, mode, base, test, Path(tmp) / mode)
    prob, text = figures["probability"], figures["text"]
    figures["speedup"] = round(text["seconds_per_verdict"] / prob["seconds_per_verdict"], 1)
    print(
        f"\n{len(rows)} obvious pairs x {len(args.metrics)} metrics x 2 orders, judged by {args.judge_model_name}"
    )
    print(f"{'mode':<12} {'s/verdict':>10} {'accuracy':>9} {'won both':>9} {'first':>7} {'invalid':>8}")
    for mode in MODES:
        m = figures[mode]
        accuracy = "n/a" if m["accuracy"] is None else f"{m['accuracy']:.1%}"
        first = "n/a" if m["first_position_share"] is None else f"{m['first_position_share']:.1%}"
        print(
            f"{mode:<12} {m['seconds_per_verdict']:>10.3f} {accuracy:>9} {m['pairs_won_both_orders']:>9.1%} "
            f"{first:>7} {m['invalid']:>4}/{m['verdicts']}"
        )
    print(f"probability verdicts are {figures['speedup']}x faster per verdict (target: at least 20x)")
    return finish(figures, args.json)


if __name__ == "__main__":
    run_cli(main)
