"""Persona accuracy (the paper's Figure 3): told only a persona, does a judge pick the response that user preferred?

Every persona of every persona-inference model found for the split and run is judged twice, once with the
chosen response first and once with it second, so a judge's position bias cancels out: a judge that always
answers "1" scores exactly 0.5. The gold answer is the position of the response on the persona's own side.
``first_share`` (how often a valid answer was "1") shows the judge's position bias. Run through ``run_model``::

    # the embedded model judges every persona model's BeaverTails personas of run "demo"
    python -m persona_inference.model.run_model --experiments persona_accuracy --run_name demo \
        --dataset_name nbalepur/persona-inference --inference_split BeaverTails

    # GPT-4o judges only gpt-4o-mini's personas, 16 requests at a time
    python -m persona_inference.model.run_model --experiments persona_accuracy --model_type open_ai \
        --model_name gpt-4o --persona_model gpt-4o-mini --inference_split BeaverTails --concurrency 16
"""

from __future__ import annotations

from collections import defaultdict

from persona_core.errors import UsageError
from persona_core.llm.base import Request
from persona_core.prompts import fill
from persona_inference.model.judging import (
    digest,
    find_persona_results,
    load_personas,
    parse_choice,
    proportion_stderr,
)

EXPERIMENT = "persona_accuracy"
ORDERS = ("chosen_first", "rejected_first")
SIDES = ("chosen", "rejected")


def responses_in_order(row: dict, order: str) -> tuple[str, str]:
    first, second = ("chosen", "rejected") if order == "chosen_first" else ("rejected", "chosen")
    return row[first].strip(), row[second].strip()


def gold_position(side: str, order: str) -> int:
    """1 or 2: where the response that a ``side`` persona prefers sits in ``order``."""
    return 1 if (side == "chosen") == (order == "chosen_first") else 2


def build_requests(dataset, personas_by_model: dict[str, list[dict]], template: str) -> tuple[list[Request], dict]:
    """Two requests (both orders) per persona; ids carry a digest of the prompt so any change is judged anew."""
    requests, meta = [], {}
    for model, personas in personas_by_model.items():
        for persona in personas:
            row = dataset[persona["row"]]
            for order in ORDERS:
                response_1, response_2 = responses_in_order(row, order)
                prompt = fill(
                    template,
                    prompt=row["prompt"].strip(),
                    response_1=response_1,
                    response_2=response_2,
                    persona=persona["persona"],
                )
                request_id = f"{model}/{persona['id']}/{order}/{digest(prompt)}"
                requests.append(Request(request_id, prompt))
                meta[request_id] = {
                    "persona_model": model,
                    "persona_id": persona["id"],
                    "row": persona["row"],
                    "side": persona["side"],
                    "order": order,
                    "gold": gold_position(persona["side"], order),
                    "persona": persona["persona"],
                }
    return requests, meta


def finish_record(record: dict) -> dict:
    record["choice"] = parse_choice(record["raw_text"])
    record["correct"] = None if record["choice"] is None else record["choice"] == record["gold"]
    return record


def summarize(records: list[dict]) -> list[dict]:
    """Accuracy per (persona model, side) over valid answers; invalid answers counted apart, never scored."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for record in records:
        groups[(record["persona_model"], record["side"])].append(record)
    rows = []
    for (model, side), group in sorted(groups.items(), key=lambda kv: (kv[0][0], SIDES.index(kv[0][1]))):
        valid = [r for r in group if r.get("correct") is not None]
        correct = sum(r["correct"] for r in valid)
        first = sum(r["choice"] == 1 for r in valid)
        rows.append(
            {
                "persona_model": model,
                "side": side,
                "questions": len(group),
                "valid": len(valid),
                "invalid": len(group) - len(valid),
                "correct": correct,
                "accuracy": correct / len(valid) if valid else float("nan"),
                "stderr": proportion_stderr(correct, len(valid)),
                "first_share": first / len(valid) if valid else float("nan"),
            }
        )
    return rows


def run(args) -> int:
    """The ``persona_accuracy`` experiment of ``run_model``."""
    from persona_core.prompts import load_template
    from persona_core.runner import run_requests
    from persona_inference import PROMPT_DIR
    from persona_inference.model.judging import judge_backend
    from persona_inference.model.run_model import load_rows, run_dir, save_results

    paths = find_persona_results(args.res_dir, args.inference_split, args.run_name, args.partition.value, args.persona_models)
    dataset, rows = load_rows(args)
    personas = {model: load_personas(path, dataset, args.dataset_name, rows) for model, path in paths.items()}
    template, template_path = load_template(EXPERIMENT, args.inference_split, args.prompt_dir or PROMPT_DIR)
    requests, meta = build_requests(dataset, personas, template)
    folder = run_dir(args)
    final_path = folder / f"{EXPERIMENT}.jsonl"
    if not requests:
        raise UsageError(
            f"the persona results of {', '.join(paths)} cover none of the rows {rows.start}-{rows.stop - 1}: "
            "use the --partition/--limit that persona inference used"
        )
    if args.dry_run:
        print(f"[dry run] template: {template_path}\n[dry run] {len(requests)} requests "
              f"({len(requests) // 2} personas x 2 orders) from {', '.join(paths)}")
        print(f"[dry run] results would go to {final_path}\n[dry run] first prompt:\n{requests[0].prompt}")
        return 0
    llm = judge_backend(args)
    records, stats = run_requests(llm, requests, meta, folder / f"{EXPERIMENT}.checkpoint.jsonl", finish_record,
                                  desc="persona accuracy")
    ordered = [records[r.id] for r in requests]
    table = summarize([r for r in ordered if r["status"] == "ok"])
    extra = {"template": str(template_path), "persona_results": {m: str(p) for m, p in paths.items()}, "summary": table}
    run_json = save_results(folder, EXPERIMENT, args, ordered, stats, extra, "persona accuracy")
    if run_json is None:
        return 1
    print(f"persona accuracy: {len(ordered)} judgments by {llm.model_name} "
          f"({stats.reused} reused, {stats.ok} new) in {stats.seconds:.1f}s")
    for line in table:
        print(f"  {line['persona_model']:<28} {line['side']:<8} accuracy {line['accuracy']:.3f} "
              f"± {line['stderr']:.3f}  ({line['valid']} valid, {line['invalid']} invalid, "
              f"{line['first_share']:.0%} answered 1)")
    print(f"results: {final_path}\nrun record: {run_json}")
    return 0

