"""Partitions cover a dataset exactly once, for every partition size and odd dataset lengths."""

import pytest

from bench.loopback import LoopbackLLMServer
from persona_core.data import Partition, partition_range
from persona_inference.model import run_model
from tests.conftest import api_args, fake_persona, read_jsonl, write_preferences

SIZES = {"half": 2, "quarter": 4, "eighth": 8}


def parts_of(size: str) -> list[Partition]:
    parts = [p for p in Partition if p.value.endswith(f"_{size}")]
    assert len(parts) == SIZES[size]
    return parts


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("n", [*range(0, 20), 33, 299, 300, 301, 1001])
def test_parts_of_one_size_tile_the_dataset(size, n):
    rows = [i for part in parts_of(size) for i in partition_range(part, n)]
    assert rows == list(range(n))  # in order: each row once, none missing
    lengths = [len(partition_range(part, n)) for part in parts_of(size)]
    assert max(lengths) - min(lengths) <= 1


def test_full_is_everything():
    assert list(partition_range(Partition.full, 7)) == list(range(7))


def test_quarter_runs_together_equal_the_full_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    data = write_preferences(tmp_path / "prefs.jsonl", 7)
    with LoopbackLLMServer(fake_persona) as server:
        args = api_args(data, tmp_path / "res", "open_ai", server.url + "/v1")
        assert run_model.main(args) == 0
        for part in parts_of("quarter"):
            assert run_model.main([*args, "--partition", part.value]) == 0
    folder = tmp_path / "res" / "loopback-model" / "Sample" / "default"
    full = read_jsonl(folder / "persona_inference.jsonl")
    by_part = [read_jsonl(folder / part.value / "persona_inference.jsonl") for part in parts_of("quarter")]
    assert [len(records) // 2 for records in by_part] == [1, 2, 2, 2]
    combined = sorted(
        (r for records in by_part for r in records), key=lambda r: (r["side"] == "rejected", r["row"])
    )
    assert combined == full
    assert len(server.calls) == 2 * 7 * 2  # the full run, then each row once more across the quarters
