"""persona_core.arguments: argument groups check their values and give generation settings."""

from __future__ import annotations

import pytest

from persona_core.arguments import BackendArguments, GenerationArguments, RunArguments
from persona_core.cli import parse
from persona_core.errors import UsageError
from persona_core.llm.base import GenerationConfig

GROUPS = (RunArguments, BackendArguments, GenerationArguments)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--temperature", "-1"], "--temperature must be 0 or more"),
        (["--max_tokens", "0"], "--max_tokens must be positive"),
        (["--min_tokens", "9", "--max_tokens", "8"], "--min_tokens (9) must not exceed --max_tokens (8)"),
        (["--batch_size", "0"], "--batch_size must be positive"),
        (["--load_in_4bit", "--load_in_8bit"], "pass only one of --load_in_4bit and --load_in_8bit"),
        (["--limit", "0"], "--limit must be positive"),
        (["--run_name", "a/b"], "must be a non-empty name without '/'"),
        (["--dtype", "fp8"], "--dtype must be one of auto, float32, bfloat16, float16 (got 'fp8')"),
    ],
)
def test_argument_groups_check_values_when_parsed(argv, message):
    with pytest.raises(UsageError) as err:
        parse(GROUPS, argv)
    assert message in str(err.value)


def test_groups_give_generation_settings_and_backend_options():
    run, backend, generation = parse(
        GROUPS, ["--temperature", "0.5", "--stop_token", "x", "y", "--concurrency", "3", "--limit", "2"]
    )
    expected = GenerationConfig(temperature=0.5, max_tokens=4, min_tokens=0, stop=("x", "y"), seed=0)
    assert generation.generation(max_tokens=4) == expected
    assert backend.backend_options()["concurrency"] == 3 and run.limit == 2


def test_dtype_loads_the_local_model_in_it_and_enters_the_fingerprint(tiny_model_dir):
    import torch

    from persona_core.llm import make_llm

    (backend,) = parse((BackendArguments,), ["--dtype", "bfloat16"])
    assert (
        backend.weight_options()["dtype"] == "bfloat16" and "dtype" not in BackendArguments().weight_options()
    )
    llm = make_llm("hf_chat", str(tiny_model_dir), **backend.backend_options())
    assert llm.model.dtype == torch.bfloat16
    assert make_llm("hf_chat", str(tiny_model_dir)).model.dtype == torch.float32  # auto: as stored
