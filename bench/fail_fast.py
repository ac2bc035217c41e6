"""How long each bad command line takes to fail, and its one error line: every case is a fresh process, as a user
runs it (run from the repository root; nothing is written).

    python -m bench.fail_fast
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

PI = "-m persona_inference.model.run_model"
PT = "-m persona_tailoring.model.run_model"
CASES = {
    "missing path-like --dataset_name": f"{PI} --dataset_name data/nope.jsonl",
    "a split a file cannot have": f"{PI} --split trian",
    "an abbreviated flag (--temp)": f"{PI} --temp 1",
    "an abbreviated training flag (--num_train_epoch)": (
        f"{PT} --method sft --stage train --num_train_epoch 1 --model_save_dir /tmp/fail-fast-unused"
    ),
    "a key as a flag (--open_ai_token)": f"{PI} --open_ai_token sk-x",
    "a key as a flag (--hf_write_token)": f"{PT} --hf_write_token hf-x",
    "--dry_run without the API key": f"{PI} --model_type open_ai --model_name gpt-4o-mini --dry_run",
    "the authors' --experiments prefs": f"{PI} --experiments prefs",
    "an unknown --inference_split (a warning; the dry run goes on)": f"{PI} --inference_split BeaverTail --dry_run",
    "build_augmented_dataset before its PI run": "-m persona_inference.model.build_augmented_dataset --model gpt-4o-mini",
}
"""Each case's command line after ``python``, split at spaces (no argument holds one)."""
KEYS = ("OPENAI_API_KEY", "OPEN_AI_TOKEN")


def main() -> int:
    env = {k: v for k, v in os.environ.items() if k not in KEYS}
    print(f"{'case':<64} {'exit':>4} {'seconds':>7}  first stderr line")
    for name, command in CASES.items():
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, *command.split()], env=env, capture_output=True, text=True, timeout=600
        )
        seconds = time.perf_counter() - start
        line = next((x for x in done.stderr.splitlines() if x.startswith(("error", "warning"))), "")
        print(f"{name:<64} {done.returncode:>4} {seconds:>7.2f}  {line[:150]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
