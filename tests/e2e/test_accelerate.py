"""The training entry point under ``accelerate launch``: two data-parallel CPU processes (gloo), and the shipped configs."""

import json
import os
import socket
import subprocess
import sys

import pytest

from tests.helpers import REPO_ROOT, write_tailoring_dataset

CONFIGS = REPO_ROOT / "scripts" / "accelerate"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_sft_on_cpu_shards_the_data(tmp_path, tiny_model_dir):
    data = write_tailoring_dataset(tmp_path / "data")
    # `accelerate launch --cpu` starts a single process; torchrun's launcher (--multi_gpu) with
    # ACCELERATE_USE_CPU starts real CPU workers that join a gloo process group.
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
        "-m",
        "persona_tailoring.model.run_model",
        "--method",
        "sft",
        "--stage",
        "train",
        "--training_type",
        "all",
        "--base_model_name",
        str(tiny_model_dir),
        "--hf_dataset_name",
        str(data),
        "--dataset_name",
        "Handmade",
        "--model_nickname",
        "tiny",
        "--model_save_dir",
        str(tmp_path / "models"),
        "--num_train_epochs",
        "1",
        "--per_device_train_batch_size",
        "2",
        "--gradient_accumulation_steps",
        "1",
        "--max_length",
        "128",
    ]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("sft (all): 8 training examples") == 1  # reported once, by rank 0
    adapter = tmp_path / "models" / "Handmade" / "tiny" / "sft_all" / "adapter"
    summary = json.loads((adapter / "training_summary.json").read_text())
    # 4 rows x 2 personas = 8 examples; 2 processes x batch 2 -> 2 optimizer steps (one process would take 4)
    assert summary["global_step"] == 2
    assert (adapter / "adapter_model.safetensors").exists() and not adapter.with_name("adapter.tmp").exists()


@pytest.mark.parametrize("name", ["multi_gpu.yaml", "zero2.yaml", "zero3.yaml"])
def test_accelerate_configs_parse(name):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(CONFIGS / name))
    assert config.distributed_type in ("MULTI_GPU", "DEEPSPEED") and config.mixed_precision == "bf16"
    if config.distributed_type == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] in (2, 3)
