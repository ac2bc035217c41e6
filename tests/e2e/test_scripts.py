"""Every script runs both ways from the repository root, ``python path/to/script.py`` (the paper's way) and
``python -m module``, and its ``--help`` stays fast because nothing heavy (torch, transformers, datasets, TRL) loads.
(Speed itself is measured outside the tests: the closing notes give the ``--help`` times.)"""

import subprocess
import sys

import pytest

from tests.helpers import REPO_ROOT

SCRIPTS = [
    "persona-inference/model/run_model.py",
    "persona-inference/model/build_augmented_dataset.py",
    "persona-inference/model/build_tailoring_dataset.py",
    "persona-inference/evaluation/accuracy_plot.py",
    "persona-inference/evaluation/persona_prefs_plot.py",
    "persona-inference/evaluation/word_saliency.py",
    "persona-tailoring/model/run_model.py",
    "persona-tailoring/model/chat.py",
    "persona-tailoring/evaluation/run_judge.py",
    "persona-tailoring/evaluation/win_rate.py",
    "persona-tailoring/evaluation/report.py",
    "bench/pi_throughput.py",
    "bench/pt_throughput.py",
    "bench/methods_throughput.py",
    "bench/engines.py",
]
PACKAGES = {
    "persona-inference": "persona_inference",
    "persona-tailoring": "persona_tailoring",
    "persona-core": "persona_core",
}


def module_of(path: str) -> str:
    top, rest = path.split("/", 1)
    return f"{PACKAGES.get(top, top)}/{rest}".removesuffix(".py").replace("/", ".")


@pytest.mark.parametrize("how", ["path", "module"])
@pytest.mark.parametrize("script", SCRIPTS)
def test_help_runs_both_ways(script, how):
    command = [sys.executable, script] if how == "path" else [sys.executable, "-m", module_of(script)]
    done = subprocess.run([*command, "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ") and "--help" in done.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_loads_no_heavy_library(script):
    probe = (
        "import runpy, sys\n"
        f"sys.argv = [{script!r}, '--help']\n"
        "try:\n"
        f"    runpy.run_path({script!r}, run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('torch', 'transformers', 'datasets', 'matplotlib', 'trl') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
