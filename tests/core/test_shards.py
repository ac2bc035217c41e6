"""Work split across processes: --num_shards/--shard_index, each shard resumable alone, the final file assembled in
order once every shard is done (by the last shard or --merge_shards), and equal to the unsharded run's."""

import json

import pytest

from bench.loopback import LoopbackLLMServer
from persona_core.errors import UsageError, run_cli
from persona_tailoring.evaluation import run_judge
from tests.helpers import (
    OUTPUT_NAME,
    api_args,
    api_argv,
    fake_persona,
    judge_view,
    loopback_answer,
    read_jsonl,
    toolkit_outputs,
    verdict,
    write_preferences,
    write_tailoring_dataset,
)


def content_judge(prompt, body):
    """Prefers the test response for even pairs, the base response for odd ones: outcomes vary by row."""
    _, side_a, i = judge_view(prompt)
    winner = "test" if i % 2 == 0 else "base"
    return verdict("A" if side_a == winner else "B")


def judge_argv(tmp_path, out, server, *extra):
    base, test = tmp_path / "base.jsonl", tmp_path / "test.jsonl"
    argv = ["--base_file", str(base), "--test_file", str(test), "--output_dir", str(out)]
    argv += ["--judge_model_type", "open_ai", "--judge_model_name", "judge", "--verdict", "text"]
    return [*argv, "--base_url", server.url, *extra]


def test_judge_shards_assemble_the_unsharded_judgments(tmp_path, capsys):
    toolkit_outputs(tmp_path, n=5)
    with LoopbackLLMServer(content_judge) as server:
        assert run_judge.main(judge_argv(tmp_path, tmp_path / "whole", server)) == 0
        whole = read_jsonl(next((tmp_path / "whole").rglob("judgments.jsonl")))
        sharded = tmp_path / "sharded"
        asked = len(server.calls)
        assert (
            run_judge.main(judge_argv(tmp_path, sharded, server, "--num_shards", "3", "--shard_index", "2"))
            == 0
        )
        assert "1 of 3 shards finished; still to run: --shard_index 0 1" in capsys.readouterr().out
        assert not list(sharded.rglob("judgments.jsonl"))  # nothing final until every shard is done
        for index in ("0", "1"):
            assert (
                run_judge.main(
                    judge_argv(tmp_path, sharded, server, "--num_shards", "3", "--shard_index", index)
                )
                == 0
            )
        # The shards asked each request once between them (the verdict cache is per output folder).
        assert len(server.calls) - asked == asked
    judgments = read_jsonl(next(sharded.rglob("judgments.jsonl")))
    assert judgments == whole
    record = json.loads(next(sharded.rglob("judge.run.json")).read_text())
    assert record["shards"] == 3 and record["verdicts"]["total"] == 20
    folder = next(sharded.rglob("judgments.jsonl")).parent
    assert sorted(p.name for p in folder.glob("judge.shard-*-of-3.jsonl")) == [
        f"judge.shard-{i}-of-3.jsonl" for i in (1, 2, 3)
    ]


def test_merge_shards_waits_for_every_shard_and_then_loads_no_model(tmp_path, capsys):
    toolkit_outputs(tmp_path, n=4)
    out = tmp_path / "out"
    with LoopbackLLMServer(content_judge) as server:
        assert (
            run_judge.main(judge_argv(tmp_path, out, server, "--num_shards", "2", "--shard_index", "0")) == 0
        )
        argv = judge_argv(tmp_path, out, server, "--num_shards", "2", "--merge_shards")
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        run_cli(lambda: run_judge.main(argv))
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "still to run: --shard_index 1" in err
    assert not list(out.rglob("judgments.jsonl"))
    with LoopbackLLMServer(content_judge) as server:
        assert (
            run_judge.main(judge_argv(tmp_path, out, server, "--num_shards", "2", "--shard_index", "1")) == 0
        )
    (final,) = out.rglob("judgments.jsonl")
    final.unlink()
    # The server is gone: merging asks nothing.
    assert run_judge.main(argv) == 0
    assert len(read_jsonl(final)) == 8
    assert "assembled from 2 shards" in capsys.readouterr().out


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--num_shards", "0"], "--num_shards must be at least 1"),
        (["--num_shards", "2", "--shard_index", "2"], "--shard_index must be in 0..1"),
        (["--merge_shards"], "--merge_shards needs the --num_shards"),
    ],
)
def test_bad_shard_flags_are_one_line_errors(tmp_path, flags, message):
    toolkit_outputs(tmp_path, n=1)
    argv = ["--base_file", str(tmp_path / "base.jsonl"), "--test_file", str(tmp_path / "test.jsonl"), *flags]
    with pytest.raises(UsageError, match=message):
        run_judge.main(argv)


def test_persona_inference_shards_equal_the_unsharded_run_also_within_a_partition(tmp_path, isolated):
    from persona_inference.model import run_model

    data = write_preferences(tmp_path / "prefs.jsonl", 8)

    def results(res, partition):
        return read_jsonl(
            res / "loopback-model" / "Sample" / "default" / partition / "persona_inference.jsonl"
        )

    with LoopbackLLMServer(fake_persona) as server:
        for partition in ("full", "second_half"):
            whole = tmp_path / f"whole-{partition}"
            sharded = tmp_path / f"sharded-{partition}"
            flags = ["--partition", partition]
            assert run_model.main(api_args(data, whole, "open_ai", server.url, *flags)) == 0
            for index in ("1", "0"):
                argv = api_args(data, sharded, "open_ai", server.url, *flags, "--num_shards", "2")
                assert run_model.main([*argv, "--shard_index", index]) == 0
            folder = "" if partition == "full" else partition
            expected, got = results(whole, folder), results(sharded, folder)
            assert [r["id"] for r in got] == [r["id"] for r in expected]  # in request order, not shard order
            assert [r["persona"] for r in got] == [r["persona"] for r in expected]
            assert len(got) == (16 if partition == "full" else 8)


def test_tailored_generation_shards_equal_the_unsharded_run(tmp_path, monkeypatch):
    from persona_core.io import read_records
    from persona_tailoring.model.run_model import main

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    data = write_tailoring_dataset(tmp_path / "data", {"test": 5})
    with LoopbackLLMServer(loopback_answer) as server:
        url = server.url + "/v1"
        assert main(api_argv(data, tmp_path / "whole", url)) == 0
        for index in ("0", "2", "1"):
            argv = api_argv(data, tmp_path / "sharded", url, "--num_shards", "3", "--shard_index", index)
            assert main(argv) == 0
            final = tmp_path / "sharded" / "results" / "Handmade" / "tiny" / OUTPUT_NAME
            assert final.exists() == (index == "1")  # the last shard to finish writes it
    expected = read_records(tmp_path / "whole" / "results" / "Handmade" / "tiny" / OUTPUT_NAME)
    assert read_records(final) == expected
