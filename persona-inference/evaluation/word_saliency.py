"""Table 1: the words most telling of chosen-side vs. rejected-side personas, by P(label | word).

Each persona is cut at its first contrast phrase ("... prefers X rather than Y" keeps "... prefers X"), since
what follows names what the user does not want. Words are lowercased, lemmatized offline with simplemma
(participles such as "detailed" and hyphenated compounds are kept as written) and counted once per persona;
stop words and the persona template's own words are dropped. P(label | word) is the share of the personas
holding the word that have that label, over words in at least ``--min_count`` personas (the paper uses 10).

These default rules depart from the paper's on purpose, in three places (``--paper_rules`` applies the paper's
rules instead; they are the paper's rules as its text describes them, not code taken from it):

* lemmatizer: simplemma lemmas (plurals and verb forms: "prefers" -> "prefer", "preferring" -> "prefer") vs.
  the paper's plural-only lemmas ("answers" -> "answer"; "preferring" stays as written);
* contrast phrases: the toolkit's eleven (``CONTRAST``) vs. the paper's five substrings ("rather than", "over",
  "instead of", "as opposed to", "not"; ``PAPER_CONTRAST``), both matched as whole words here;
* stop words: the toolkit's stop list plus the persona template's own words (``STOP_WORDS``) vs. none.
Examples::

    python -m persona_inference.evaluation.word_saliency
    python -m persona_inference.evaluation.word_saliency --run_name demo --models gpt-4o-mini \\
        --datasets BeaverTails "Anthropic HHH" --top_k 10 --min_count 10 --out_dir figures
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from persona_core.arguments import positive
from persona_core.cli import parse
from persona_core.errors import run_cli
from persona_core.layout import PERSONA_INFERENCE, SIDES, figure_table
from persona_inference.evaluation import common

CONTRAST = re.compile(
    r"\b(?:rather than|instead of|as opposed to|over|versus|vs\.?|compared (?:to|with)|in contrast to|"
    r"more than|but not|without)\b"
)
WORD = re.compile(r"[a-z]+(?:[-'][a-z]+)*")
STOP_WORDS = frozenset(
    """a about above after again all also am an and any are as at be because been being both but by can could
    did do does doing during each either etc few for from further had has have having he her here hers him his
    how i if in into is it its itself just may me might more most much must my neither nor of off on once only
    or other our ours out own same she should so some such than that the their theirs them then there these
    they this those through to too under until up very was we were what when where which while who whom whose
    why will with would you your yours s t""".split()
) | {
    "user",
    "prefer",
    "preference",
    "person",
    "someone",
    "individual",
    "response",
    "answer",
    "value",
    "seek",
    "like",
    "want",
}


# The paper's five contrast substrings, as its text describes the rule (matched as whole words, so that
# "overall" is not cut at "over" nor "another" at "not").
PAPER_CONTRAST = re.compile(r"\b(?:rather than|over|instead of|as opposed to|not)\b")
# Words ending in "s" that are not plurals; "-ss", "-us" and "-is" endings are kept by rule.
NOT_PLURALS = frozenset(
    """always perhaps whereas news series species does was has yes its hers ours yours theirs besides towards
    afterwards sometimes nevertheless physics mathematics economics politics ethics athletics""".split()
)


def plural_only_lemma(word: str) -> str:
    """The paper's lemma: undo a regular English plural and nothing else ("answers" -> "answer",
    "stories" -> "story", "boxes" -> "box"); verb and participle forms ("preferring", "detailed") stay."""
    if len(word) <= 3 or word in NOT_PLURALS or not word.endswith("s") or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "zes", "sses")):
        return word[:-2]
    return word[:-1]


def toolkit_lemma(token: str) -> str:
    """The toolkit's lemma: simplemma's, except participles and hyphenated compounds stay as written."""
    import simplemma

    # Participles used as adjectives ("detailed", "solution-focused") stay as written: without part-of-speech
    # tags the lemmatizer would turn them into verbs.
    keep = "-" in token or token.endswith("ed")
    return token if keep else simplemma.lemmatize(token, lang="en").lower()


@dataclass(frozen=True)
class Rules:
    """How personas become words: where a persona is cut, how a word is lemmatized, which words are dropped."""

    name: str
    contrast: re.Pattern
    lemma: Callable[[str], str]
    stop_words: frozenset[str]
    min_length: int


TOOLKIT_RULES = Rules("toolkit", CONTRAST, toolkit_lemma, STOP_WORDS, 2)
PAPER_RULES = Rules("paper", PAPER_CONTRAST, plural_only_lemma, frozenset(), 1)


@dataclass
class SaliencyArguments:
    """Which words are listed, and by which word rules."""

    top_k: int = field(default=10, metadata={"help": "Words listed per label."})
    min_count: int = field(
        default=10, metadata={"help": "Leave out words found in fewer personas than this."}
    )
    paper_rules: bool = field(
        default=False,
        metadata={
            "help": "Use the paper's word rules, as its text describes them: plural-only lemmas, its five contrast "
            "substrings (rather than, over, instead of, as opposed to, not), no stop list. The default departs "
            "from the paper on purpose in all three: simplemma lemmas (verb forms too; participles and hyphenated "
            "words kept), eleven contrast phrases (adds versus, vs, compared to/with, in contrast to, more than, "
            "but not, without; drops a bare 'not'), and a stop list plus the persona template's own words."
        },
    )

    def rules(self) -> Rules:
        return PAPER_RULES if self.paper_rules else TOOLKIT_RULES

    def check(self) -> None:
        positive(self, "top_k", "min_count")


def cut_at_contrast(persona: str, contrast: re.Pattern = CONTRAST) -> str:
    """The persona up to its first contrast phrase, lowercased."""
    text = persona.lower()
    match = contrast.search(text)
    return text[: match.start()] if match else text


def persona_words(persona: str, rules: Rules = TOOLKIT_RULES) -> set[str]:
    """The distinct content lemmas of a persona before its first contrast phrase."""
    words = set()
    for token in WORD.findall(cut_at_contrast(persona, rules.contrast)):
        lemma = rules.lemma(token)
        if token not in rules.stop_words and lemma not in rules.stop_words and len(lemma) >= rules.min_length:
            words.add(lemma)
    return words


def salient_words(
    personas: list[tuple[str, str]], top_k: int, min_count: int, rules: Rules = TOOLKIT_RULES
) -> dict[str, list[dict]]:
    """``{label: [{word, p, count, label_count}, ...]}``: the top-k words by P(label | word) for each label."""
    counts = {label: Counter() for label in SIDES}
    for persona, label in personas:
        counts[label].update(persona_words(persona, rules))
    totals = counts["chosen"] + counts["rejected"]
    table = {}
    for label in SIDES:
        scored = [
            {
                "word": word,
                "p": counts[label][word] / total,
                "count": total,
                "label_count": counts[label][word],
            }
            for word, total in totals.items()
            if total >= min_count and counts[label][word]
        ]
        scored.sort(key=lambda s: (-s["p"], -s["count"], s["word"]))
        table[label] = scored[:top_k]
    return table


def collect(
    figure: common.FigureArguments, saliency: SaliencyArguments
) -> tuple[dict[str, dict[str, list[dict]]], dict[str, int], list[str]]:
    """Per dataset: the saliency table, the number of personas per dataset, and the models pooled."""
    found = common.find_selected(figure, PERSONA_INFERENCE, figure.models, "--models")
    by_dataset: dict[str, list[tuple[str, str]]] = {}
    for result in found:
        records = common.read_result_records(result.path, ("side", "persona"))
        by_dataset.setdefault(result.dataset, []).extend(
            (r["persona"], r["side"]) for r in records if r["side"] in SIDES and r["persona"]
        )
    datasets = figure.datasets or common.ordered_datasets(by_dataset)
    rules = saliency.rules()
    tables = {d: salient_words(by_dataset[d], saliency.top_k, saliency.min_count, rules) for d in datasets}
    return tables, {d: len(by_dataset[d]) for d in datasets}, sorted({r.model for r in found})


def plot(
    tables: dict[str, dict[str, list[dict]]],
    saliency: SaliencyArguments,
    models: list[str],
    model_names: dict[str, str],
    dataset_names: dict[str, str],
):
    """One row of panels per dataset, one panel per side: its top words by P(side | word)."""
    top_k, min_count = saliency.top_k, saliency.min_count
    fig, axes = common.new_figure(len(tables), len(SIDES), 3.6, 0.28 * top_k + 1.2)
    for i, (dataset, table) in enumerate(tables.items()):
        for j, label in enumerate(SIDES):
            ax = axes[i][j]
            entries = table[label]
            ys = range(len(entries))
            ax.barh(ys, [e["p"] for e in entries], color=common.SIDE_COLORS[label])
            ax.set_yticks(ys, [f"{e['word']} ({e['count']})" for e in entries], fontsize=8)
            ax.set_ylim(top_k - 0.5, -0.5)
            ax.set_xlim(0, 1)
            ax.axvline(0.5, linestyle="--", color="#555555", linewidth=1)
            ax.set_xlabel(f"P({label} | word)")
            ax.set_title(f"{dataset_names.get(dataset, dataset)}: {label} personas", fontsize=10)
            if not entries:
                ax.text(0.5, top_k / 2, f"no word in {min_count}+ personas", ha="center", fontsize=8)
    pooled = ", ".join(model_names.get(m, m) for m in models)
    fig.suptitle(
        f"Personas from {pooled}; words in at least {min_count} personas; {saliency.rules().name} word rules",
        fontsize=9,
        y=1.0,
    )
    fig.tight_layout()
    return fig


def markdown_table(table: dict[str, list[dict]], top_k: int) -> str:
    lines = ["| rank | chosen personas | P | rejected personas | P |", "| --- | --- | --- | --- | --- |"]
    for rank in range(top_k):
        cells = []
        for label in SIDES:
            entry = table[label][rank] if rank < len(table[label]) else None
            cells += [entry["word"], f"{entry['p']:.2f}"] if entry else ["", ""]
        if any(cells):
            lines.append(f"| {rank + 1} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    figure, saliency = parse(
        (common.FigureArguments, SaliencyArguments), argv, description=__doc__.split("\n\n")[0]
    )
    tables, sizes, models = collect(figure, saliency)
    out_dir = figure.out_folder()
    model_names = common.parse_name_map(figure.model_names, "--model_names")
    dataset_names = common.parse_name_map(figure.dataset_names, "--dataset_names")
    fig = plot(tables, saliency, models, model_names, dataset_names)
    figures = common.save_figure(fig, out_dir, "saliency")
    common.close(fig)
    rows = [
        {"dataset": dataset, "label": label, "rank": rank + 1, **entry, "rules": saliency.rules().name}
        for dataset, table in tables.items()
        for label in SIDES
        for rank, entry in enumerate(table[label])
    ]
    csv_path = common.write_csv(rows, figure_table(out_dir, "saliency"))
    for dataset, table in tables.items():
        print(
            f"\n{dataset} ({sizes[dataset]} personas from {', '.join(models)})\n{markdown_table(table, saliency.top_k)}"
        )
    empty = [d for d, t in tables.items() if not any(t.values())]
    if empty:
        print(
            f"\nno word reaches --min_count {saliency.min_count} in: {', '.join(empty)} (lower it for small runs)"
        )
    print(
        f"\nword saliency: {len(tables)} dataset(s), {sum(sizes.values())} personas, {saliency.rules().name} word rules"
        + (" (--paper_rules)" if saliency.paper_rules else " (the paper's: --paper_rules)")
    )
    print(f"figure: {', '.join(map(str, figures))}\nnumbers: {csv_path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
