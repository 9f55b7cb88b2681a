"""The findings sentences name the best mask per backbone and state significance from the comparisons."""

from __future__ import annotations

import pandas as pd

from lungprior.report.findings import findings_sentences


def _results(seeds: list[int]) -> pd.DataFrame:
    rows = []
    for seed in seeds:
        for mask, macro, nf in (("original", 0.70, 0.60), ("tight", 0.80, 0.55)):
            rows += [{"backbone": "resnet18", "mask": mask, "seed": seed, "class": "macro", "auroc": macro},
                     {"backbone": "resnet18", "mask": mask, "seed": seed, "class": "No Finding", "auroc": nf}]
    return pd.DataFrame(rows)


def _comparisons(ps: list[float]) -> pd.DataFrame:
    rows = []
    for seed, p in enumerate(ps):
        rows += [{"backbone": "resnet18", "seed": seed, "mask": "tight", "target": "macro AUROC", "p": p, "p_holm": p},
                 {"backbone": "resnet18", "seed": seed, "mask": "tight", "target": "No Finding", "p": 0.5,
                  "p_holm": 0.9}]
    return pd.DataFrame(rows)


def test_one_seed_states_its_p_value() -> None:
    (sentence,) = findings_sentences(_results([0]), _comparisons([0.01]))
    assert "best input is <b>tight</b> (AUROC 0.800 vs 0.700 on original images" in sentence
    assert "significantly different from the original images (bootstrap p = 0.01)" in sentence
    assert "No Finding discrimination the best input is <b>original</b> (AUROC 0.600)" in sentence


def test_several_seeds_need_significance_in_every_seed() -> None:
    (all_sig,) = findings_sentences(_results([0, 1, 2]), _comparisons([0.01, 0.02, 0.001]))
    assert "significantly different from the original images in all 3 seeds (bootstrap p ≤ 0.02)" in all_sig
    (mixed,) = findings_sentences(_results([0, 1, 2]), _comparisons([0.01, 0.2, 0.001]))
    assert "not significantly different from the original images in every seed (bootstrap p 0.001 to 0.2" in mixed
