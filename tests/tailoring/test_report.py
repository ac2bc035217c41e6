"""The run report: one self-contained HTML page of a run, from the real stages' outputs, checked section by section
(and, slow, in headless Chromium: the row browser's search and outcome filter change the visible rows).

The run is made by the real stage modules, with scripted models behind the loopback server: persona inference,
persona accuracy and preferences on 4 rows, PT generation with and without personas on 3 test rows, the
pairwise judge, win rates and every figure. So every number the page shows is known exactly.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import shutil
from pathlib import Path

import pytest

from bench.loopback import LoopbackLLMServer
from persona_core import layout
from tests.helpers import write_preferences, write_tailoring_dataset

ROWS = 4  # preference rows: personas, accuracy and preference answers
TEST_ROWS = 3  # tailoring test rows: generations and judgments
UNSURE = "question q0?"  # the PI judges cannot decide on this row: its answers are invalid
SAME_PERSONA = "question q1?"  # this row's two sides get the same persona
PERSONA_OF_Q1 = "The user is a reader who prefers plain answers to the first question."
# The pairwise judge's plan per test row, from the test configuration's side (win = test wins both orders).
PLAN = {"personalization": ["win", "tie", "invalid"], "response_quality": ["loss", "win", "win"]}
REPETITIVE = "again and again and again and again and again and again and again and again"


def respond(prompt: str, body: dict) -> str:
    """Every scripted model of the run, told apart by name (PI, PI judges, PT generator, pairwise judge)."""
    model = body["model"]
    if prompt.startswith("Repeat exactly this sentence"):  # the probe of probability verdicts: continued
        return prompt.split(": ", 1)[1]
    if model == "pi-model":
        liked = re.findall(r"Answer the user liked: (.*)", prompt)[-1]
        if SAME_PERSONA in prompt:
            return PERSONA_OF_Q1
        return f"The user is a reader who prefers answers like '{liked}' to the other kind."
    if model == "judge-model":  # persona accuracy and preferences: always the first option, but unsure on q0
        return "I cannot tell." if UNSURE in prompt else "1"
    if model == "generator":
        index = int(re.findall(r"question test(\d+)\?", prompt)[-1])
        if "Persona:" in prompt:
            return f" Tailored answer {index} for this reader."
        return f" {REPETITIVE}" if index == 2 else f" Plain answer {index}."
    return pairwise_verdict(prompt)


def pairwise_view(prompt: str) -> tuple[str, int, bool]:
    """(metric, test row, whether Response A is the test configuration's) of a Prometheus prompt."""
    response_a = prompt.split("###Response A:")[1].split("###Response B:")[0]
    metric = "personalization" if "persona" in prompt.split("###Score Rubric:")[1] else "response_quality"
    index = int(re.search(r"answer (\d+)", response_a).group(1)) if "answer" in response_a else 2
    return metric, index, "Tailored" in response_a


def pairwise_verdict(prompt: str) -> str:
    metric, index, a_is_test = pairwise_view(prompt)
    wanted = PLAN[metric][index]
    if wanted == "invalid":
        return "no verdict here"
    if wanted == "tie":
        return "Feedback: both are fine. [RESULT] A"
    test_wins = wanted == "win"
    return f"Feedback: one follows the rubric better. [RESULT] {'A' if a_is_test == test_wins else 'B'}"


def probabilities(prompt: str, body: dict) -> list[tuple[str, float]]:
    """Next-token log-probabilities for probability verdicts: PI judges 0.6 for "1"; the pairwise judge 0.75 for
    the test response's letter, whatever its position."""
    if body["model"] == "judge-model":
        return [("1", math.log(0.6)), ("2", math.log(0.4))]
    _, _, a_is_test = pairwise_view(prompt)
    return [("A" if a_is_test else "B", math.log(0.75)), ("B" if a_is_test else "A", math.log(0.25))]


def pi_argv(top: dict, server, data: Path) -> list[str]:
    return [
        *("--dataset_name", str(data / "preferences.jsonl"), "--inference_split", "Tiny"),
        *("--res_dir", str(top["pi"]), "--model_type", "open_ai", "--base_url", f"{server.url}/v1"),
    ]


PI_JUDGES = ["--model_name", "judge-model", "--experiments", "persona_accuracy", "persona_prefs"]
PI_JUDGES += [
    "--persona_models",
    "pi-model",
    "--prefs_question",
    "more_common",
]  # shows the prompt the judge trips on


def pt_argv(top: dict) -> list[str]:
    return [
        "--dataset_name",
        "Handmade",
        "--model_nickname",
        "tiny",
        "--results_save_dir",
        str(top["generations"]),
    ]


def generation_argv(top: dict, server, data: Path, *inference_types: str) -> list[str]:
    return [
        *("--method", "sft", "--stage", "infer", "--backend", "open_ai", "--base_url", f"{server.url}/v1"),
        *("--server_model_name", "generator", "--hf_dataset_name", str(data / "tailoring")),
        *("--model_save_dir", str(top["models"]), "--inference_type", *inference_types, *pt_argv(top)),
    ]


def comparison_argv(top: dict, *test_inference_types: str) -> list[str]:
    sides = ["--model_type_base", "sft", "--training_type_base", "chosen", "--inference_type_base", "none"]
    sides += ["--model_type_test", "sft", "--training_type_test", "chosen"]
    return [
        *pt_argv(top),
        *sides,
        "--inference_type_test",
        *test_inference_types,
        "--output_dir",
        str(top["judge"]),
    ]


def judge_argv(server) -> list[str]:
    return ["--judge_model_type", "open_ai", "--judge_model_name", "prometheus", "--base_url", server.url]


def make_run(root: Path, data: Path) -> Path:
    """Every stage of scripts/pipeline.sh but training, by the stage modules themselves, below ``root``."""
    from persona_inference.evaluation import accuracy_plot, persona_prefs_plot, word_saliency
    from persona_inference.model import run_model as pi_run_model
    from persona_tailoring.evaluation import run_judge, win_rate
    from persona_tailoring.model import run_model as pt_run_model

    top = layout.results_root_dirs(root)
    write_preferences(data / "preferences.jsonl", ROWS)
    write_tailoring_dataset(data / "tailoring", {"fewshot": 1, "sft_train": 2, "test": TEST_ROWS})
    with LoopbackLLMServer(respond) as server:
        pi = pi_argv(top, server, data)
        assert pi_run_model.main([*pi, "--model_name", "pi-model", "--experiments", "persona_inference"]) == 0
        assert pi_run_model.main([*pi, *PI_JUDGES]) == 0
        assert pt_run_model.main(generation_argv(top, server, data, "gold-chosen", "none")) == 0
        assert run_judge.main([*comparison_argv(top, "gold-chosen"), *judge_argv(server)]) == 0
    assert win_rate.main([*comparison_argv(top, "gold-chosen"), "--resamples", "200", "--plot"]) == 0
    for plot in (accuracy_plot, persona_prefs_plot):
        assert plot.main(["--res_dir", str(top["pi"])]) == 0
    assert word_saliency.main(["--res_dir", str(top["pi"]), "--min_count", "1"]) == 0
    return root


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    """The run's folder: ``results/`` (the results root) and ``data/`` (its datasets)."""
    folder = tmp_path_factory.mktemp("report")
    make_run(folder / "results", folder / "data")
    return folder


@pytest.fixture
def run_root(run_folder) -> Path:
    return run_folder / "results"


def write_report(root: Path, *extra: str) -> str:
    from persona_tailoring.evaluation import report

    assert report.main(["--root", str(root), *extra]) == 0
    return layout.report_path(root).read_text(encoding="utf-8")


def browsers(page: str) -> dict[str, list[list[str]]]:
    """{browser title: each row's outcome tokens}."""
    found = {}
    for part in page.split('<section class="browser">')[1:]:
        title = re.search(r"<h3>(.*?)</h3>", part).group(1)
        found[title] = [
            tokens.split() for tokens in re.findall(r'<article class="row" data-outcome="([^"]*)"', part)
        ]
    return found


def copy_run(run_root: Path, target: Path, *folders: str) -> Path:
    """A copy of the run's results root with only the named top folders (``results_root_dirs`` keys)."""
    top, copied = layout.results_root_dirs(run_root), layout.results_root_dirs(target)
    for name in folders:
        shutil.copytree(top[name], copied[name])
    return target


def test_the_report_holds_every_section_with_the_right_counts(run_root, capsys):
    page = write_report(run_root)
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == f"report: {layout.report_path(run_root)}"
    assert f"{ROWS} persona rows and {TEST_ROWS} judged test rows" in out

    headline = page.split('id="headline"')[1].split('id="figures"')[0]
    # personas: 8 well-formed of 8; row q1 got the same persona on both sides
    assert re.search(
        r"<td>pi-model / Tiny / default</td><td>4</td><td>8/8</td><td>0</td><td>1</td><td>0</td>", headline
    )
    # accuracy: always "1" is right in one of the two orders: 3 of 6 valid per side, row q0's 2 answers invalid
    for side in layout.SIDES:
        assert re.search(
            rf"<td>{side}</td><td>50\.0% \[\d+\.\d%, \d+\.\d%\]</td><td>6</td><td>2</td>", headline
        )
    # preferences: "1" in both orders is a tie on every row but q0 (invalid)
    assert "<td>4</td><td>0.0% (0)</td><td>100.0% (3)</td><td>0.0% (0)</td><td>1</td>" in headline
    # the judge: personalization win/tie/invalid, quality loss/win/win
    assert "invalid verdicts: 2/12 after retries (2 on the first attempt)" in headline
    assert re.search(
        r"<td>personalization</td><td>3</td><td>0</td><td>1</td><td>1</td><td>1</td><td>1\.000", headline
    )
    assert re.search(
        r"<td>response_quality</td><td>3</td><td>1</td><td>0</td><td>2</td><td>0</td><td>0\.667", headline
    )
    assert re.search(r"<td>ΔPQ</td>(<td></td>){5}<td>\+0\.667 \[", headline)
    assert "<td>base</td><td>3</td><td>1</td>" in headline and "<td>test</td><td>3</td><td>0</td>" in headline

    figures = page.split('id="figures"')[1].split('id="rows"')[0]
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", figures)
    assert [c.split(":")[0] for c in captions] == ["Figure 3", "Figure 4", "Table 1", "Win rates"]
    assert figures.count('src="data:image/png;base64,') == 4

    rows = browsers(page)
    pi_title, pt_title = list(rows)
    assert pi_title == "Persona inference rows: pi-model / Tiny / default" and pt_title.startswith(
        "Tailored test rows"
    )
    assert len(rows[pi_title]) == ROWS and len(rows[pt_title]) == TEST_ROWS
    assert rows[pi_title][0] == ["invalid", "prefs:invalid"]
    assert all(tokens == ["correct", "prefs:tie", "wrong"] for tokens in rows[pi_title][1:])
    for index, tokens in enumerate(rows[pt_title]):
        expected = {f"{metric}:{plan[index]}" for metric, plan in PLAN.items()}
        assert set(tokens) == expected | {plan[index] for plan in PLAN.values()}
    assert (
        "question q3?" in page and "good answer c3" in page and "bad answer r3" in page
    )  # the PI rows' texts
    assert (
        "Tailored answer 1 for this reader." in page and "Feedback: both are fine." in page
    )  # PT rows, feedback

    records = page.split('id="records"')[1]
    stages = re.findall(
        r"<tr><td>(persona inference|persona accuracy|persona preferences|generation|judge)</td>", records
    )
    assert sorted(stages) == sorted(
        ["persona inference", "persona accuracy", "persona preferences", "generation", "generation", "judge"]
    )
    assert "temperature 0.0" in records and "transformers" in records and "prometheus" in records

    # self-contained: no resource is fetched from anywhere when the page is opened
    assert not re.search(r"<(link|iframe)\b|\bsrc=\"(?!data:)|@import|url\(", page)


def test_a_persona_inference_run_gives_a_persona_inference_report(run_root, tmp_path):
    page = write_report(copy_run(run_root, tmp_path / "results", "pi"))
    assert "Persona accuracy" in page and "Figure 3" in page and "Persona inference rows" in page
    assert "Win rates" not in page and "Tailored test rows" not in page
    assert re.search(
        r"Not in this run: trained models, generations, judged comparisons, ΔPQ grid tables", page
    )
    assert len(browsers(page)) == 1


def test_the_text_summary_prints_the_headline_numbers_the_page_shows(run_root, capsys):
    """--summary: the page's headline numbers as text lines, before the page is written."""
    page = write_report(run_root, "--summary")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{'personas well-formed:':28} 8/8"
    assert lines[1] == f"{'rows, same persona per side:':28} 1 identical, 0 nearly (of 4 rows)"
    for side in layout.SIDES:
        assert f"{f'persona accuracy, {side}:':28} 50.0% of 6 valid answers (2 invalid)" in lines
    assert f"{'judge verdicts:':28} text, 2/12 invalid (2 on the first attempt)" in lines
    (personalization,) = [line for line in lines if line.startswith("win rate, personalization:")]
    assert re.fullmatch(
        r"win rate, personalization: +1\.000 \[1\.000, 1\.000\]; from the verdicts' probabilities undefined",
        personalization,
    )
    (delta,) = [line for line in lines if line.startswith("ΔPQ:")]
    assert re.match(r"ΔPQ: +\+0\.667 \[", delta)
    assert re.search(r"<td>ΔPQ</td>(<td></td>){5}<td>\+0\.667 \[", page)
    assert lines[-1] == f"report: {layout.report_path(run_root)}"


def test_probability_verdicts_and_a_delta_pq_grid_are_shown(run_folder, tmp_path):
    """PI judges and a grid of two test configurations on probability verdicts: the page shows each verdict's
    probabilities and the grid's ΔPQ table (its pivot, every number, its figure)."""
    from persona_inference.model import run_model as pi_run_model
    from persona_tailoring.evaluation import run_judge, win_rate
    from persona_tailoring.model import run_model as pt_run_model

    root = copy_run(run_folder / "results", tmp_path / "results", "pi", "generations")
    top, data = layout.results_root_dirs(root), run_folder / "data"
    with LoopbackLLMServer(respond, top_logprobs=probabilities) as server:
        probability = ["--verdict", "probability"]
        assert pi_run_model.main([*pi_argv(top, server, data), *PI_JUDGES, *probability, "--overwrite"]) == 0
        assert pt_run_model.main(generation_argv(top, server, data, "retr-chosen")) == 0
        grid = comparison_argv(top, "gold-chosen", "retr-chosen")
        assert run_judge.main([*grid, *judge_argv(server), *probability]) == 0
    assert win_rate.main(["--comparison_dir", str(top["judge"]), "--resamples", "200", "--plot"]) == 0
    page = write_report(root)

    headline = page.split('id="headline"')[1].split('id="figures"')[0]
    for (
        side
    ) in layout.SIDES:  # "1" is always the more probable answer: right in one order of two, never invalid
        assert re.search(rf"<td>{side}</td><td>50\.0% \[[^<]*\]</td><td>8</td><td>0</td>", headline)
    assert headline.count("verdict mode: probability") == 2
    assert (
        len(
            re.findall(
                r"<td>personalization</td><td>3</td><td>0</td><td>0</td><td>3</td><td>0</td>", headline
            )
        )
        == 2
    )
    # the win rates from the verdicts' probabilities: p(test wins) 0.75 everywhere, so ΔPQ 0.5
    assert headline.count("<td>0.750 [0.750, 0.750]</td>") == 2 * 2 and headline.count("<td>+0.500 [") == 2
    grid_table = headline.split("ΔPQ grid")[1]
    assert re.search(r"<th>test configuration \(vs sft-chosen-none\)</th><th>Handmade</th>", grid_table)
    for test in ("sft-chosen-gold-chosen", "sft-chosen-retr-chosen"):
        assert re.search(
            rf"<td>[^<]*{test}</td><td>\+1\.000 \[[^<]*\]<br>P 1\.000 · Q 1\.000</td>", grid_table
        )
    figures = page.split('id="figures"')[1].split('id="rows"')[0]
    assert "<figcaption>ΔPQ grid" in figures

    rows = html.unescape(page.split('id="rows"')[1])
    assert "chosen_first: answered 1, gold 1; p 1 0.600, 2 0.400" in rows
    assert (
        rows.count("p(test wins) 0.750; probability verdict") == 2 * 2 * TEST_ROWS
    )  # comparisons x metrics x rows
    assert re.search(
        r"base_first: B → test; p A 0\.250, B 0\.750; p\(test wins\) 0\.750; top tokens 'B' 0\.750", rows
    )


def test_rows_whose_dataset_changed_are_left_out_with_a_note(run_root, tmp_path):
    root = copy_run(run_root, tmp_path / "results", "pi")
    record = json.loads(
        layout.pi_files(
            layout.results_root_dirs(root)["pi"], "pi-model", "Tiny", "default"
        ).run_record.read_text()
    )
    dataset = Path(record["arguments"]["dataset_name"])
    original = dataset.read_text()
    try:
        dataset.write_text(original.replace("question q3?", "question q3, edited?"))
        page = write_report(root)
    finally:
        dataset.write_text(original)
    assert "1 of 4 rows of" in page and "no longer match the persona ids" in page
    assert "question q3" not in page.split('id="rows"')[1].split('id="records"')[0]
    assert "question q2?" in page


@pytest.mark.parametrize(
    "make_root, message",
    [
        (lambda tmp: tmp / "missing", "is not a folder"),
        (lambda tmp: tmp, "no results of any stage below"),
    ],
)
def test_a_root_without_results_is_one_line_and_writes_nothing(tmp_path, capsys, make_root, message):
    from persona_core.errors import run_cli
    from persona_tailoring.evaluation import report

    root = make_root(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda: report.main(["--root", str(root)]))
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and message in err
    assert not layout.report_path(root).exists() and list(tmp_path.iterdir()) == []


# --- in a real browser -------------------------------------------------------------------------------------------


def browser_tools():
    """Playwright's sync API and Debian's chromium, which it drives (.ci/run installs chromium when missing:
    Playwright's own browser download cannot reach its servers here). Missing either skips, except in CI
    (``PERSONA_REQUIRE_BROWSER``), where it fails."""
    try:
        from playwright import sync_api
    except ImportError:
        sync_api, missing = None, "playwright is not installed (pip install -r requirements.txt)"
    executable = shutil.which("chromium")
    if sync_api is not None:
        missing = None if executable else "Debian's chromium is not installed (apt-get install -y chromium)"
    if missing and os.environ.get("PERSONA_REQUIRE_BROWSER"):
        pytest.fail(f"{missing}, and PERSONA_REQUIRE_BROWSER is set (CI)")
    if missing:
        pytest.skip(missing)
    return sync_api, executable


@pytest.mark.slow  # starts a browser (a few seconds)
def test_the_row_browser_filters_and_searches_offline_in_chromium(run_root, tmp_path):
    sync_api, executable = browser_tools()
    write_report(run_root)
    requested = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        page = browser.new_context(offline=True).new_page()
        page.on("request", lambda request: requested.append(request.url))
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(layout.report_path(run_root).as_uri())
        screenshot = tmp_path / "report.png"
        page.screenshot(path=str(screenshot), full_page=True)
        pi, pt = page.locator("section.browser").all()

        def visible(section) -> int:
            return section.locator("article.row:visible").count()

        assert visible(pi) == ROWS and visible(pt) == TEST_ROWS
        assert pt.locator(".count").inner_text() == f"{TEST_ROWS} of {TEST_ROWS} rows shown"
        pt.locator("select.outcome").select_option("personalization:win")
        assert visible(pt) == 1 and "Tailored answer 0" in pt.locator("article.row:visible").inner_text()
        pt.locator("select.outcome").select_option("win")  # either metric: every row has a win somewhere
        assert visible(pt) == TEST_ROWS
        pt.locator("select.outcome").select_option("personalization:tie")
        assert visible(pt) == 1 and "Tailored answer 1" in pt.locator("article.row:visible").inner_text()
        pt.locator("select.outcome").select_option("loss")
        assert visible(pt) == 1 and pt.locator(".count").inner_text() == f"1 of {TEST_ROWS} rows shown"
        pi.locator("input.search").fill("GOOD ANSWER C2")
        assert visible(pi) == 1 and visible(pt) == 1  # each browser filters its own rows
        pi.locator("select.outcome").select_option("prefs:invalid")
        assert visible(pi) == 0
        pi.locator("input.search").fill("")
        assert visible(pi) == 1
        browser.close()
    assert errors == []
    assert all(url.startswith(("file:", "data:")) for url in requested), requested
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000


def test_a_conversational_dataset_is_shown_as_text(tmp_path):
    """Rows of a TRL conversational file are shown as persona inference read them: text, not message lists."""
    from persona_core.layout import REPO_ROOT
    from persona_inference.model import run_model

    data = REPO_ROOT / "data" / "formats" / "conversational.jsonl"
    root = tmp_path / "results"
    top = layout.results_root_dirs(root)
    with LoopbackLLMServer(respond) as server:
        argv = ["--dataset_name", str(data), "--inference_split", "Tiny", "--res_dir", str(top["pi"])]
        argv += ["--model_type", "open_ai", "--base_url", f"{server.url}/v1", "--model_name", "pi-model"]
        assert run_model.main(argv) == 0
    page = write_report(root)
    assert "What&#x27;s a good way to remember to drink more water?" in page
    assert "&#x27;role&#x27;" not in page and "Keep a refillable bottle on your desk" in page
    assert "prompts and responses not shown" not in page
