"""Judges that give one answer (one position) in nearly all verdicts are flagged wherever their numbers appear."""

import json

from persona_core.weak_judge import check_answers, pairwise_answers
from persona_inference.model.persona_accuracy import PersonaAccuracy
from persona_tailoring.evaluation import win_rate
from persona_tailoring.evaluation.report_page import weak_judge_notes
from persona_tailoring.evaluation.report_reading import Comparison, Run
from tests.helpers import comparison


def test_one_answer_in_nearly_all_verdicts_is_flagged_and_a_varied_judge_is_not():
    always_first = check_answers(["A"] * 40)
    assert (
        always_first["answer"] == "A"
        and always_first["share"] == 1.0
        and "weak judge" in always_first["warning"]
    )
    assert check_answers(["A"] * 39 + ["B"]) is not None  # 97.5%
    assert check_answers(["A"] * 30 + ["B"] * 10) is None
    assert check_answers(["1", "1", "1"]) is None  # too few to tell
    unreadable = check_answers([None] * 20)
    assert unreadable["answer"] is None and "unreadable" in unreadable["warning"]
    assert check_answers([None] * 10 + ["A", "B"] * 10) is None


def judgment(letter_base_first, letter_test_first, i=0):
    return {
        "id": f"p{i}",
        "metric": "personalization",
        "outcome": "tie",
        "base_first": {"raw_verdict": letter_base_first, "verdict": "base"},
        "test_first": {"raw_verdict": letter_test_first, "verdict": "test"},
    }


def test_win_rate_flags_a_judge_that_always_answers_a(tmp_path, capsys):
    rows = []
    for i in range(6):
        for metric in ("personalization", "response_quality"):
            row = judgment("A", "A", i) | {"metric": metric, "comparison": comparison("base", "test")}
            rows.append(row)
    assert pairwise_answers(rows) == ["A"] * 24
    folder = tmp_path / "judge" / "comparisons" / "base_vs_test"
    folder.mkdir(parents=True)
    (folder / "judgments.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert win_rate.main(["--comparison_dir", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "weak judge: it answered 'A'" in out
    summary = json.loads((folder / "win_rate.json").read_text())
    assert summary["weak_judge"]["share"] == 1.0


def test_the_paper_format_without_letters_is_not_flagged():
    assert pairwise_answers([{"base_first": {"verdict": "base"}, "test_first": {"verdict": "test"}}]) == []


def test_persona_judge_summary_and_report_carry_the_flag():
    records = [
        {
            "persona_model": "pi",
            "side": "chosen",
            "row": r,
            "order": o,
            "choice": 1,
            "correct": o == "chosen_first",
            "persona": f"The user is {r}.",
        }
        for r in range(5)
        for o in ("chosen_first", "rejected_first")
    ]
    summary = PersonaAccuracy().summarize(records, template="")
    assert summary["weak_judge"]["answer"] == "1"
    comparison = Comparison("dpo vs dpo", [judgment("A", "A", i) for i in range(4)], None)
    accuracy = Comparison("judge / Sample / demo", records, None)
    run = Run(
        root=None,
        personas=[],
        accuracy=[accuracy],
        prefs=[],
        figures=[],
        comparisons=[comparison],
        grids=[],
        generations=[],
        models=[],
    )
    notes = weak_judge_notes(run)
    assert (
        notes.count("weak judge") == 2
        and "answered &#x27;1&#x27;" in notes
        and "answered &#x27;A&#x27;" in notes
    )
