"""The stage driver: a stage that sends requests to a model is declared once (``RequestStage``: its files, requests
with stable ids, fingerprint, how a finished request becomes a record, its summary) and ``run_stage`` runs the
whole lifecycle for it, the same for every stage:

1. ``check_stage`` (before any model loads): a finished stage with the same fingerprint is reused; other settings
   are refused in one line naming ``--overwrite`` and how to keep both; ``--merge_shards`` needs every shard;
2. the lock and fingerprint of this process's shard (``runs.open_run``: same → resume from the checkpoint);
3. the requests not yet in the checkpoint, each result appended at once (``runner.run_requests``);
4. the run record (``RunRecord``), then the failure check: results are written only when every request succeeded;
5. the final file written atomically, or, with shards, assembled in order once every shard is done.

``describe`` is the dry run: what a stage would read and write, and its settings, without running anything.

A stage whose output is one piece of work rather than a file of records (a trained adapter, a merged model) is a
``WorkStage``: ``run_work_stage`` gives it the same refusal, lock, reuse and ``--overwrite``; its work resumes
from its own checkpoints (the trainer's) under the same fingerprint only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

from persona_core.errors import UsageError
from persona_core.io import JsonlCheckpoint, write_jsonl_atomic
from persona_core.layout import StageFiles
from persona_core.llm.base import LLM, GenerationConfig, Request
from persona_core.runner import RunStats, run_requests
from persona_core.runs import check_fingerprint, open_run, write_run_record
from persona_core.shards import ShardArguments, assemble, missing_shards, this_shard, unfinished


def keep_all(record: dict) -> dict:
    return record


def no_summary(rows: list[dict], records: dict[str, dict]) -> dict:
    return {}


@dataclass
class Execution:
    """What one process's run of a stage gave: every record by id (retries included), the run record's stats, and
    the first round's counts (what the console shows)."""

    records: dict[str, dict]
    stats: dict
    first: RunStats


@dataclass
class RequestStage:
    """One stage run: requests to one backend, one final file."""

    label: str
    files: StageFiles
    requests: list[Request]
    meta: dict[str, dict]
    """Per request id: the fields its record keeps besides the answer."""
    fingerprint: dict
    generation: GenerationConfig
    finish: Callable[[dict], dict] = keep_all
    """A finished request's checkpoint record -> its result record."""
    final_record: Callable[[dict], dict] = keep_all
    """A final row -> what the final file keeps (shard files keep whole records)."""
    summarize: Callable[[list[dict], dict[str, dict]], dict] = no_summary
    """(final rows, or so far the successful records in request order; every record by id) -> the run record's
    summary fields."""
    execute: Callable[..., Execution] | None = None
    """``execute(llm, requests, checkpoint)``: how the requests are answered, when more than once through
    ``run_requests`` (the judge: first attempts, then retries, on the open checkpoint); default: one
    ``run_requests``."""
    assemble: Callable[[dict[str, dict]], list[dict]] | None = None
    """Every record by id -> the final file's rows (default: the records in request order)."""
    options: tuple[str, ...] | None = None
    """Answers whose probabilities are read instead of generating."""
    model: str | None = None
    """What the run record names as the model that ran."""
    prompts: str | None = None
    """A digest of the prompts (template or built inputs), for the run record."""
    record: dict = field(default_factory=dict)
    """Extra run-record fields."""
    keep_both: str = "--run_name"
    """The flag that keeps both results, named by a refusal."""
    reuse_finished: bool = False
    """A final file with the same fingerprint is kept as it is (no backend is built for it)."""
    render_prompts: bool = False
    """Record the backend's rendering of each request as its record's ``prompt``."""


@dataclass
class StageOutcome:
    """What ``run_stage`` did: ``done``, ``reused``, ``failed`` or ``waiting`` (a shard finished, others still to run)."""

    status: str
    records: list[dict] = field(default_factory=list)
    stats: RunStats | None = None
    summary: dict = field(default_factory=dict)
    run_record: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"


def check_stage(stage: RequestStage, overwrite: bool, shards: ShardArguments) -> bool:
    """Refuse other settings before any model loads; False when the stage's final file is reused as it is."""
    files = stage.files
    if stage.reuse_finished and files.results.exists() and not overwrite:
        check_fingerprint(files, stage.fingerprint, overwrite, stage.keep_both)
        print(f"{files.results} exists (same settings; pass --overwrite to redo it)")
        return False
    if shards.merge_shards:
        if missing_shards(files, shards):
            raise UsageError(f"cannot merge yet: {unfinished(files, shards)}")
        return True
    own_files, _ = this_shard(files, stage.requests, shards)
    check_fingerprint(own_files, stage.fingerprint, overwrite, stage.keep_both)
    return True


def answer(stage: RequestStage, llm: LLM, requests: list[Request], checkpoint: JsonlCheckpoint) -> Execution:
    """The default execution: every request through ``run_requests`` once, each result checkpointed at once."""
    records, stats = run_requests(
        llm,
        requests,
        stage.meta,
        checkpoint,
        stage.generation,
        stage.finish,
        desc=stage.label,
        options=stage.options,
    )
    return Execution(records, stats.as_dict(), stats)


def final_rows(stage: RequestStage, records: dict[str, dict]) -> list[dict]:
    return stage.assemble(records) if stage.assemble else [records[r.id] for r in stage.requests]


def run_stage(
    stage: RequestStage,
    backend: Callable[[], LLM],
    overwrite: bool,
    shards: ShardArguments,
    arguments: dict,
) -> StageOutcome:
    """Run ``stage`` (checked with ``check_stage``) through ``backend()``; ``arguments`` go into the run record."""
    files = stage.files
    own_files, own_requests = this_shard(files, stage.requests, shards)
    stats = RunStats(total=len(stage.requests))
    if not shards.merge_shards:
        llm = backend()
        if stage.render_prompts:
            for request in own_requests:
                stage.meta[request.id]["prompt"] = llm.render(request)
        with open_run(own_files, stage.fingerprint, overwrite, stage.keep_both):
            # opened once: every round of the stage appends to it
            checkpoint = JsonlCheckpoint(own_files.checkpoint)
            try:
                execute = stage.execute or functools.partial(answer, stage)
                execution = execute(llm, own_requests, checkpoint)
            finally:
                checkpoint.close()
            records, stats = execution.records, execution.first
            ordered = [records[r.id] for r in own_requests]
            failed = [r for r in records.values() if r.get("status") != "ok"]
            if failed or shards.sharded:  # this process's record; the final one comes with the final file
                ok_so_far = [r for r in ordered if r["status"] == "ok"]
                partial = stage.summarize(ok_so_far, records) if stage.assemble is None else {}
                run_record = write_run_record(
                    own_files, arguments, execution.stats, **headline(stage), **stage.record, **partial
                )
            if failed:
                print(
                    f"{stage.label}: {len(failed)} of {len(records)} requests failed (first: {failed[0]['error']})"
                )
                print(
                    f"checkpoint kept in {own_files.folder}; rerun the same command to retry the failed requests"
                )
                return StageOutcome("failed", failed, stats, {}, run_record)
            if not shards.sharded:
                return finish_stage(stage, records, arguments, execution.stats, stats)
            extra = [r for i, r in records.items() if i not in {q.id for q in own_requests}]
            write_jsonl_atomic(own_files.results, ordered + extra)
    records = assemble(files, stage.requests, stage.fingerprint, shards)
    if records is None:
        print(
            f"{stage.label}: shard {shards.shard_index} done ({len(own_requests)} requests); {unfinished(files, shards)}"
        )
        return StageOutcome("waiting", stats=stats)
    return finish_stage(stage, records, arguments, stats.as_dict(), stats, shards=shards.num_shards)


def finish_stage(
    stage: RequestStage, records: dict[str, dict], arguments: dict, run_stats: dict, stats: RunStats, **extra
) -> StageOutcome:
    """The final rows, their summary and run record, and the final file written atomically."""
    rows = final_rows(stage, records)
    summary = stage.summarize(rows, records)
    run_record = write_run_record(
        stage.files, arguments, run_stats, **extra, **headline(stage), **stage.record, **summary
    )
    write_jsonl_atomic(stage.files.results, [stage.final_record(r) for r in rows])
    return StageOutcome("done", rows, stats, summary, run_record)


def headline(stage: RequestStage) -> dict:
    """The run record's typed fields of a request stage."""
    return {"model": stage.model, "prompts": stage.prompts, "generation": asdict(stage.generation)}


def describe(stage: RequestStage, reads: list[str], settings: dict) -> str:
    """The dry run of a stage: its resolved settings, what it reads and writes, how many requests."""
    lines = [f"[dry run] {stage.label}: {len(stage.requests)} requests"]
    lines += [f"[dry run]   setting {key}: {value}" for key, value in settings.items()]
    lines += [f"[dry run]   reads {path}" for path in reads]
    written = [stage.files.results, stage.files.checkpoint, stage.files.run_record, stage.files.fingerprint]
    lines += [f"[dry run]   writes {path}" for path in written]
    return "\n".join(lines)


@dataclass
class WorkStage:
    """One piece of work with folder outputs: ``finished`` exists once it is done; ``outputs`` are what its
    fingerprint vouches for (``--overwrite`` deletes them, checkpoints included)."""

    label: str
    files: StageFiles
    fingerprint: dict
    outputs: list[Path]
    finished: Path
    keep_both: str


def run_work_stage(stage: WorkStage, work: Callable[[], object], overwrite: bool, main: bool = True) -> bool:
    """Refuse other settings (before any model loads), reuse a finished stage, else hold the folder and ``work()``;
    True when the work ran. Under a distributed launch every process works and only the ``main`` one holds the
    folder (and under ``--overwrite`` empties it first)."""
    check_fingerprint(stage.files, stage.fingerprint, overwrite, stage.keep_both, stage.outputs)
    if stage.finished.exists() and not overwrite:
        if main:
            print(f"{stage.label} up to date (same settings): {stage.finished.parent}")
        return False
    held = (
        open_run(stage.files, stage.fingerprint, overwrite, stage.keep_both, stage.outputs)
        if main
        else nullcontext()
    )
    with held:
        work()
    return True
