"""Win rates, ties and ΔPQ with 95% bootstrap intervals over prompts, and length-controlled win rates: the
statistics alone, from judgment rows already read (no files).

Per metric: the shares of base wins, ties (the two orders disagree), test wins and invalid verdicts;
win rate = test wins / (test wins + base wins), undefined (None) without decisive verdicts;
ΔPQ = ½[(p_win − ½)/½ + (q_win − ½)/½] over the personalization (p) and response-quality (q) win rates
(``delta_pq``, the one place it is computed).

Degenerate outputs and length, from the two responses each judgment records: per side (base/test) the number of
repetitive responses (``degenerate.is_repetitive``) and the mean response length in words; and per metric a
length-controlled win rate (``lc_win_rate``, in the spirit of alpaca_eval's): a logistic regression of the
decisive verdicts (test win 1, base win 0) on the normalized length difference (test − base words, over its
standard deviation), read at zero difference, sigmoid(intercept). Undefined (None, with a note) when the
judgments lack the responses, when the decisive verdicts are all one way, or when length separates them.
"""

from __future__ import annotations

from persona_core.errors import UsageError
from persona_tailoring.evaluation.degenerate import response_stats, words

METRICS = ("personalization", "response_quality")
SIDES = ("base", "test")
OUTCOME_CODES = {"base": 0, "tie": 1, "test": 2, "invalid": 3}
SHARE_NAMES = ("base_wins", "ties", "test_wins", "invalid")  # in OUTCOME_CODES order
NO_RESPONSES = "the judgments do not record the two responses (rerun run_judge to rewrite them)"


def delta_pq(p_win, q_win):
    """ΔPQ = ½[(p_win − ½)/½ + (q_win − ½)/½]: win rates, or arrays of them (bootstrap resamples); None when
    either win rate is undefined."""
    if p_win is None or q_win is None:
        return None
    return 0.5 * ((p_win - 0.5) / 0.5 + (q_win - 0.5) / 0.5)


def outcome_codes(rows: list[dict], where: str) -> dict[str, list[int]]:
    """Outcome codes per metric, aligned over the prompts (ids) in first-seen order."""
    by_id: dict[str, dict[str, int]] = {}
    for row in rows:
        if row.get("outcome") not in OUTCOME_CODES or row.get("metric") not in METRICS:
            raise UsageError(
                f"{where} has a row without a known metric/outcome: rerun run_judge to rewrite it"
            )
        by_id.setdefault(row["id"], {})[row["metric"]] = OUTCOME_CODES[row["outcome"]]
    metrics = [m for m in METRICS if any(m in outcomes for outcomes in by_id.values())]
    incomplete = [i for i, outcomes in by_id.items() if any(m not in outcomes for m in metrics)]
    if incomplete:
        raise UsageError(f"{where}: prompt '{incomplete[0]}' lacks a metric the others have: rerun run_judge")
    return {m: [outcomes[m] for outcomes in by_id.values()] for m in metrics}


def responses_by_side(rows: list[dict]) -> dict[str, list[str]] | None:
    """Each prompt's base and test response (the ids in ``outcome_codes``' order); None if a row lacks either."""
    by_id: dict[str, dict[str, str]] = {}
    for row in rows:
        pair = {side: row.get(f"{side}_response") for side in SIDES}
        if not all(isinstance(text, str) for text in pair.values()):
            return None
        by_id.setdefault(row["id"], pair)
    return {side: [pair[side] for pair in by_id.values()] for side in SIDES}


def test_probabilities(rows: list[dict]) -> dict[str, list[float]] | None:
    """Each prompt's ``p_test`` per metric (the ids in ``outcome_codes``' order), from probability verdicts; None
    when any judgment lacks one (text verdicts)."""
    by_metric: dict[str, dict[str, float]] = {}
    for row in rows:
        if not isinstance(row.get("p_test"), (int, float)):
            return None
        by_metric.setdefault(row["metric"], {})[row["id"]] = float(row["p_test"])
    return {metric: list(values.values()) for metric, values in by_metric.items()}


def normalized_length_difference(base: list[str], test: list[str]) -> list[float]:
    """(test words − base words) / their standard deviation over the pairs; all 0.0 when it is constant."""
    import numpy as np

    diff = np.array([len(words(t)) - len(words(b)) for b, t in zip(base, test, strict=True)], dtype=float)
    std = diff.std()
    return (diff / std if std > 0 else np.zeros_like(diff)).tolist()


def length_controlled_win_rate(codes: list[int], length_diff: list[float]) -> dict:
    """``{"lc_win_rate", "lc_length_coef"}`` (+ ``lc_note`` when undefined), from one metric's outcome codes.

    Maximum likelihood logistic regression (scipy.optimize, unpenalized) of the decisive verdicts on the
    normalized length difference with an intercept; ``lc_win_rate`` = sigmoid(intercept), the win rate the fit
    predicts at equal lengths. Its maximum likelihood estimate does not exist when the decisive verdicts are all
    one way, or when length separates them (every test win at least as long, relative to base, as every base
    win, or the reverse): then both are None and the note says why. A constant length difference leaves the
    intercept alone, so the LC win rate is the raw one.
    """
    import numpy as np
    from scipy.optimize import minimize
    from scipy.special import expit, log_expit

    codes, x = np.asarray(codes), np.asarray(length_diff, dtype=float)
    decisive = np.isin(codes, [OUTCOME_CODES["test"], OUTCOME_CODES["base"]])
    y, x = (codes[decisive] == OUTCOME_CODES["test"]).astype(float), x[decisive]
    undefined = {"lc_win_rate": None, "lc_length_coef": None}
    if not decisive.any():
        return {**undefined, "lc_note": "no decisive verdicts"}
    if y.min() == y.max():
        side = "test" if y[0] else "base"
        return {**undefined, "lc_note": f"every decisive verdict is a {side} win: no regression to fit"}
    constant = bool(np.ptp(x) == 0)
    wins, losses = x[y == 1], x[y == 0]
    if not constant and (losses.max() <= wins.min() or wins.max() <= losses.min()):
        return {
            **undefined,
            "lc_note": "the length difference separates the verdicts: the regression has no finite fit",
        }
    design = np.column_stack([np.ones_like(x), x]) if not constant else np.ones((x.size, 1))

    def loss(theta):
        z = design @ theta
        gradient = design.T @ (expit(z) - y)
        return -(y * log_expit(z) + (1 - y) * log_expit(-z)).sum(), gradient

    fit = minimize(loss, np.zeros(design.shape[1]), jac=True, method="BFGS")
    if not np.all(np.isfinite(fit.x)) or np.abs(fit.jac).max() > 1e-3:
        return {**undefined, "lc_note": f"the regression did not converge ({fit.message})"}
    return {
        "lc_win_rate": round(float(expit(fit.x[0])), 4),
        "lc_length_coef": 0.0 if constant else round(float(fit.x[1]), 4),
    }


def _win_rates(codes):
    """Win rate per row of a (resamples, prompts) code array; NaN where a row has no decisive verdict."""
    import numpy as np

    test = (codes == OUTCOME_CODES["test"]).sum(axis=-1)
    decisive = test + (codes == OUTCOME_CODES["base"]).sum(axis=-1)
    return np.divide(test, decisive, out=np.full(test.shape, np.nan), where=decisive > 0)


def _interval(values) -> list[float] | None:
    """The 95% percentile interval of the defined resamples (``undefined`` counts the others)."""
    import numpy as np

    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    low, high = np.percentile(finite, [2.5, 97.5])
    return [round(float(low), 4), round(float(high), 4)]


def count_undefined(values) -> int:
    """Resamples whose statistic is undefined (no decisive verdict drawn): reported, never dropped silently."""
    import numpy as np

    return int((~np.isfinite(values)).sum())


def summarize(
    codes_by_metric: dict[str, list[int]],
    resamples: int = 1000,
    seed: int = 0,
    responses: dict[str, list[str]] | None = None,
    p_tests: dict[str, list[float]] | None = None,
) -> dict:
    """Shares, win rate and ΔPQ, each with a percentile bootstrap interval over prompts (resampled jointly).

    With ``responses`` (``responses_by_side``: each prompt's base and test response, aligned with the codes):
    per side the repetitive responses and mean words, and per metric the length-controlled win rate. With
    ``p_tests`` (``test_probabilities``, from probability verdicts): per metric the probability win rate, the mean
    over prompts of P(test wins) averaged over the two orders (alpaca_eval's preference average; a judge's constant
    position bias cancels out, so a judge that always picks the first response scores 0.5 where the discrete win
    rate has only ties), and ΔPQ from those.
    """
    import numpy as np

    n = len(next(iter(codes_by_metric.values())))
    rng = np.random.default_rng(seed)
    index = rng.integers(0, n, size=(resamples, n))
    out: dict = {"prompts": n, "bootstrap": {"resamples": resamples, "seed": seed}}
    boot_wins, boot_soft = {}, {}
    if responses is not None:
        out["responses"] = {side: response_stats(responses[side]) for side in SIDES}
        length_diff = normalized_length_difference(responses["base"], responses["test"])
    else:
        out["responses"] = {"note": NO_RESPONSES}
        length_diff = None
    for metric, codes in codes_by_metric.items():
        out[metric], boot_wins[metric] = metric_summary(np.asarray(codes), index, length_diff)
        if p_tests is not None:
            shares = np.asarray(p_tests[metric])
            boot_soft[metric] = shares[index].mean(axis=1)
            out[metric]["probability_win_rate"] = round(float(shares.mean()), 4)
            out[metric]["probability_ci95"] = _interval(boot_soft[metric])
    if all(m in codes_by_metric for m in METRICS):
        out["delta_pq"] = delta_pq_summary(out, boot_wins, boot_soft if p_tests is not None else None)
    else:
        out["delta_pq"] = {
            "value": None,
            "ci95": None,
            "undefined_resamples": resamples,
            "note": "needs both personalization and response_quality",
        }
    return out


def metric_summary(codes, index, length_diff) -> tuple[dict, object]:
    """One metric's counts, shares, win rate and length-controlled win rate, with bootstrap intervals over the
    resampled prompts ``index``; and the bootstrap win rates (for ΔPQ's interval)."""
    n = len(codes)
    counts = {name: int((codes == k).sum()) for name, k in zip(SHARE_NAMES, range(4), strict=True)}
    decisive = counts["test_wins"] + counts["base_wins"]
    samples = codes[index]
    boot_wins = _win_rates(samples)
    summary = {
        "n": n,
        "counts": counts,
        **{name: round(count / n, 4) for name, count in counts.items()},
        "share_ci95": {
            name: _interval((samples == k).mean(axis=1))
            for name, k in zip(SHARE_NAMES, range(4), strict=True)
        },
        "win_rate": round(counts["test_wins"] / decisive, 4) if decisive else None,
        "ci95": _interval(boot_wins),
        "undefined_resamples": count_undefined(boot_wins),
        **(
            length_controlled_win_rate(codes, length_diff)
            if length_diff is not None
            else {"lc_win_rate": None, "lc_length_coef": None, "lc_note": NO_RESPONSES}
        ),
    }
    if not decisive:
        summary["note"] = "no decisive verdicts (all ties or invalid): win rate undefined"
    return summary, boot_wins


def delta_pq_summary(out: dict, boot_wins: dict, boot_soft: dict | None) -> dict:
    """ΔPQ from the two metrics' win rates with its bootstrap interval; from probability win rates too."""
    value = delta_pq(out["personalization"]["win_rate"], out["response_quality"]["win_rate"])
    boot = delta_pq(boot_wins["personalization"], boot_wins["response_quality"])
    summary = {
        "value": None if value is None else round(value, 4),
        "ci95": _interval(boot),
        "undefined_resamples": count_undefined(boot),
    }
    if boot_soft is not None:
        soft = delta_pq(
            out["personalization"]["probability_win_rate"], out["response_quality"]["probability_win_rate"]
        )
        boot = delta_pq(boot_soft["personalization"], boot_soft["response_quality"])
        summary["probability_value"] = round(soft, 4)
        summary["probability_ci95"] = _interval(boot)
    return summary
