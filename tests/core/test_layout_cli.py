"""persona_core.layout_cli: the layout's named paths, read into bash variables."""

from __future__ import annotations

import subprocess
import sys

from persona_core.layout import REPO_ROOT
from persona_core.layout_cli import pipeline_paths, pt_model_paths


def test_layout_paths_reads_the_named_paths_into_bash_variables(tmp_path):
    """scripts/lib/layout.sh: each variable named gets its path (spaces and parentheses kept); a name the
    contract does not know stops the script with one error line."""
    root = tmp_path / "r o"
    script = (
        'PYTHON="$1"; source scripts/lib/layout.sh\n'
        'layout_paths pipeline --root "$2" --dataset Sample --pi_nickname pi --pt_nickname pt -- '
        "WITH_PERSONA PERSONAS\n"
        "layout_paths pt_model --model_save_dir models --dataset_name Sample --model_nickname pt --method sft "
        "--training_type chosen -- MERGED_DONE\n"
        'printf "%s\\n" "$PERSONAS" "$WITH_PERSONA" "$MERGED_DONE"'
    )
    command = ["bash", "-euc", script, "-", sys.executable, str(root)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    paths = pipeline_paths(root, "Sample", "pi", "pt")
    assert done.stdout.splitlines() == [
        str(paths["PERSONAS"]),
        str(paths["WITH_PERSONA"]),
        str(pt_model_paths("models", "Sample", "pt", "sft", "chosen")["MERGED_DONE"]),
    ]
    assert paths["WITH_PERSONA"].name == "dpo_Persona(training_type=chosen, inference_type=gold-chosen).jsonl"

    command[2] = script.replace("WITH_PERSONA PERSONAS", "PERSONAS WITH_PERSONAS")
    refused = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
    assert refused.returncode != 0 and refused.stdout == ""
    assert refused.stderr.startswith(
        "error: pipeline has no path named WITH_PERSONAS: ask for one of PI_DIR,"
    )
    assert len(refused.stderr.splitlines()) == 1
