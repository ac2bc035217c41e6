"""Degenerate outputs: a repeated word n-gram detector, and per-configuration response statistics.

Pure functions, no model: a response is tokenized into lowercase words (runs of letters and digits, an inner
apostrophe kept, punctuation dropped), and its word n-grams are compared with the earlier ones of the same text.
A model stuck in a loop ("the cat sat. the cat sat. the cat sat.") repeats most of its n-grams; ordinary prose
almost never repeats a 4-gram.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")

# Why 0.3: a plain answer repeats no 4-gram (0.0) and a long, list-like answer that restates a phrase a few
# times stays near 0.1, while a loop repeats nearly all of its n-grams once it has gone round twice: "the cat
# sat." three times is 0.5, a sentence copied after itself about 0.45, ten times about 0.9. On the paper's
# released BeaverTails DPO outputs (5 configurations x 499 responses) the median is 0.0, the 90th percentile
# about 0.03, the 99th 0.09-0.13, and the few looping answers lie at 0.49-0.88. 0.3 sits in the gap: at least
# ~30% of the response is a copy of what it already said.
REPETITIVE_THRESHOLD = 0.3


def words(text: str | None) -> list[str]:
    """The lowercase words of ``text`` (none for empty or missing text)."""
    return WORD.findall((text or "").lower())


def repeated_ngram_share(text: str | None, n: int = 4) -> float:
    """The share of the word n-grams of ``text`` that repeat an earlier n-gram of the same text.

    0.0 for a text with fewer than ``n`` words (no n-gram at all), so short and empty responses are never
    flagged; a text that is one phrase looped k times tends to (k - 1) / k.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    tokens = words(text)
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    repeats = 0
    for gram in grams:
        if gram in seen:
            repeats += 1
        else:
            seen.add(gram)
    return repeats / len(grams)


def is_repetitive(text: str | None, threshold: float = REPETITIVE_THRESHOLD, n: int = 4) -> bool:
    """Whether at least ``threshold`` of the word n-grams of ``text`` repeat earlier ones (see REPETITIVE_THRESHOLD)."""
    return repeated_ngram_share(text, n) >= threshold


def response_stats(
    responses: Iterable[str | None], threshold: float = REPETITIVE_THRESHOLD, n: int = 4
) -> dict:
    """``{"responses", "repetitive", "mean_words"}``: how many responses, how many are repetitive, mean words.

    ``mean_words`` is None without responses.
    """
    responses = list(responses)
    lengths = [len(words(r)) for r in responses]
    return {
        "responses": len(responses),
        "repetitive": sum(is_repetitive(r, threshold, n) for r in responses),
        "mean_words": round(sum(lengths) / len(lengths), 2) if lengths else None,
    }
