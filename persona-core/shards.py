"""Work split across processes, GPUs or machines: ``--num_shards N --shard_index I``.

Shard ``I`` takes every ``N``-th request of a stage, starting at ``I`` (the requests are built the same way in every
shard, so the split is stable), and runs them in its own files (``layout.shard_files``): its own lock, checkpoint,
fingerprint and results, so each shard resumes on its own and any number run at once (a SLURM array, one process
per GPU). A shard that finishes writes its results; the stage's final file is assembled, in request order, by
whichever run finds every shard finished (the last shard, a rerun, or ``--merge_shards``, which loads no model).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from persona_core import layout
from persona_core.errors import UsageError
from persona_core.io import read_records
from persona_core.layout import StageFiles


@dataclass
class ShardArguments:
    """Which share of a stage's requests this process runs."""

    num_shards: int = field(
        default=1,
        metadata={"help": "Split the requests into this many shards (one process, GPU or machine each)."},
    )
    shard_index: int = field(
        default=0,
        metadata={"help": "The shard this process runs, 0 to --num_shards - 1 (e.g. $SLURM_ARRAY_TASK_ID)."},
    )
    merge_shards: bool = field(
        default=False,
        metadata={
            "help": "Only assemble the final file from finished shards (loads no model, asks nothing)."
        },
    )

    def check(self) -> None:
        if self.num_shards < 1:
            raise UsageError(f"--num_shards must be at least 1 (got {self.num_shards})")
        if not 0 <= self.shard_index < self.num_shards:
            raise UsageError(
                f"--shard_index must be in 0..{self.num_shards - 1} for --num_shards {self.num_shards} "
                f"(got {self.shard_index})"
            )
        if self.merge_shards and self.num_shards == 1:
            raise UsageError("--merge_shards needs the --num_shards the shards were run with")

    @property
    def sharded(self) -> bool:
        return self.num_shards > 1


def this_shard(files: StageFiles, requests: list, shards: ShardArguments) -> tuple[StageFiles, list]:
    """The files and requests of this process's shard (the stage's own when unsharded)."""
    if not shards.sharded:
        return files, requests
    index, count = shards.shard_index, shards.num_shards
    return layout.shard_files(files, index, count), requests[index::count]


def assemble(
    files: StageFiles, requests: list, fingerprint: dict, shards: ShardArguments
) -> list[dict] | None:
    """Every request's record, in request order, once every shard has finished with ``fingerprint``; else None.

    A shard run with other settings is an error: its records would mix with these.
    """
    expected = json.loads(json.dumps(fingerprint, default=str))
    records: dict[str, dict] = {}
    for index in range(shards.num_shards):
        shard = layout.shard_files(files, index, shards.num_shards)
        if not shard.results.is_file():
            return None
        if json.loads(shard.fingerprint.read_text(encoding="utf-8")) != expected:
            raise UsageError(
                f"shard {index} of {shards.num_shards} in {shard.folder} was run with other settings: rerun it with "
                "these (--overwrite), or run every shard with the same flags"
            )
        records.update((r["id"], r) for r in read_records(shard.results))
    missing = [r.id for r in requests if r.id not in records]
    if missing:
        raise UsageError(
            f"the finished shards of {files.results} lack {len(missing)} requests (first: {missing[0]}): "
            "the shards were built from other data; rerun them with --overwrite"
        )
    return records


def missing_shards(files: StageFiles, shards: ShardArguments) -> list[int]:
    return [
        i
        for i in range(shards.num_shards)
        if not layout.shard_files(files, i, shards.num_shards).results.is_file()
    ]


def unfinished(files: StageFiles, shards: ShardArguments) -> str:
    """What a shard prints when others are still running, or what --merge_shards refuses with."""
    missing = missing_shards(files, shards)
    return (
        f"{shards.num_shards - len(missing)} of {shards.num_shards} shards finished; "
        f"still to run: --shard_index {' '.join(map(str, missing))} (the last to finish, or --merge_shards, "
        f"writes {files.results})"
    )
