"""bench/random_model.py: the 1B config's size (counted on the meta device), and a tiny build that saves, reloads and
chats; seeded weights; its ``--help`` loads no heavy library."""

import subprocess
import sys

import pytest

from bench import random_model
from persona_core.errors import UsageError
from tests.helpers import REPO_ROOT


def test_the_1b_config_has_about_a_billion_parameters():
    tokenizer = random_model.load_tokenizer(None)  # the embedded SmolLM2's: 49152 tokens
    config = random_model.model_config("1b", tokenizer)
    count = random_model.parameter_count(config)
    assert 0.9e9 <= count <= 1.3e9, count
    assert config.vocab_size == len(tokenizer) == 49152 and config.tie_word_embeddings
    tiny = random_model.parameter_count(random_model.model_config("tiny", tokenizer))
    assert tiny < 5e6


def test_a_tiny_build_saves_reloads_and_chats(tmp_path, capsys):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path / "tiny"
    assert random_model.main(["--output_dir", str(folder), "--size", "tiny", "--dtype", "float32"]) == 0
    printed = capsys.readouterr().out
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    count = sum(p.numel() for p in model.parameters())
    assert f"{count:,} parameters" in printed and str(folder) in printed
    assert type(model).__name__ == "LlamaForCausalLM" and model.dtype == torch.float32
    assert model.config.vocab_size == len(tokenizer) and model.config.eos_token_id == tokenizer.eos_token_id
    assert tokenizer.chat_template is not None and tokenizer.pad_token is not None
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        output = model.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert output.shape[1] == ids.shape[1] + 3


def test_weights_follow_the_seed_and_the_dtype(tmp_path, tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    def build(name, *flags):
        folder = tmp_path / name
        argv = ["--output_dir", str(folder), "--size", "tiny", "--tokenizer", str(tiny_model_dir), *flags]
        assert random_model.main(argv) == 0
        return AutoModelForCausalLM.from_pretrained(folder, dtype="auto")

    first, again, other = build("a", "--seed", "3"), build("b", "--seed", "3"), build("c", "--seed", "4")
    assert first.dtype == torch.bfloat16  # the default dtype, stored: dtype="auto" (hf_chat's) loads it
    weights = first.state_dict()
    assert all(torch.equal(weights[k], v) for k, v in again.state_dict().items())
    assert not torch.equal(
        weights["model.embed_tokens.weight"], other.state_dict()["model.embed_tokens.weight"]
    )
    assert random_model.weights_digest(first) == random_model.weights_digest(again)
    assert random_model.weights_digest(first) != random_model.weights_digest(other)


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "--output_dir is required"),
        (["--output_dir", "x", "--size", "7b"], "unknown --size '7b'"),
        (["--output_dir", "x", "--dtype", "int8"], "unknown --dtype 'int8'"),
    ],
)
def test_bad_arguments_are_one_line(argv, message):
    with pytest.raises(UsageError, match=message):
        random_model.main(argv)


def test_help_loads_no_heavy_library():
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['bench/random_model.py', '--help']\n"
        "try:\n"
        "    runpy.run_path('bench/random_model.py', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "--output_dir" in done.stdout and done.stdout.strip().splitlines()[-1] == "[]"
