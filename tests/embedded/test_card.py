"""The model card's and the study's text follow the numbers they are given."""

from __future__ import annotations

import pandas as pd

from lossprofile.embedded.card import noise_budget
from lossprofile.embedded.study import study_markdown


def test_noise_budget_says_how_far_the_noise_cost_is_from_clean_and_from_the_counting_learner():
    card = dict(noise_noise_window_nll=4.03, noise_clean_window_nll=3.70, noise_noise_unigram_nll=4.13)
    text = noise_budget(card)[0]
    assert "pays 4.03 nats per code on the noise and 3.70 on the clean music" in text
    assert "0.10 less than the counting learner" in text  # the model beats the counting learner
    assert "under 3.70: 0.33 less than now and 0.43 less than the counting learner" in text
    card = dict(noise_noise_window_nll=4.30, noise_clean_window_nll=4.18, noise_noise_unigram_nll=4.17)
    text = noise_budget(card)[0]
    assert "0.13 more than the counting learner" in text and "which the counting learner already does" in text
    assert noise_budget({"noise_noise_window_nll": 4.0}) == []  # cards measured before the learner existed


def test_noise_budget_says_whether_knowing_noise_would_bring_it_below_the_music():
    card = dict(noise_noise_window_nll=4.10, noise_clean_window_nll=3.95, noise_noise_unigram_nll=4.24)
    assert noise_budget(card)[0].endswith("or a codec that gives noise fewer codes.")  # no known-source number
    text = noise_budget(dict(card, noise_noise_known_nll=3.31))[0]
    assert "learns nothing in context would pay 3.31: 0.64 below the clean music, so this codec leaves room" in text
    assert text.startswith("**What Assimilation < 0 needs.**")
    text = noise_budget(dict(card, noise_noise_known_nll=4.05))[0]
    assert "would pay 4.05: 0.10 above the clean music" in text and "a codec that gives noise fewer codes" in text


def test_noise_budget_explains_an_assimilation_below_zero():
    card = dict(noise_noise_window_nll=3.23, noise_clean_window_nll=4.01, noise_noise_unigram_nll=4.24,
                noise_noise_known_nll=3.34)
    text = noise_budget(card)[0]
    assert text.startswith("**Why Assimilation is below zero.**") and "must pay under" not in text
    assert "pays 0.78 less on the noise than on the music and 1.01 less than the counting learner" in text
    assert "even pays 0.11 less than the learner that knows them" in text


def test_study_table_shows_model_learner_and_clean_and_marks_missing_numbers():
    row = dict(variant="reference", pieces=300, heldout_nll=5.17, repeat_ratio=1.01, wrong_note_auroc=0.56,
               onset_peak=1.96, assimilation=0.55, spearman_length_delta=0.37, noise_nll_early=5.93,
               noise_nll_late=5.79, noise_window_nll=5.86, noise_unigram_nll=4.20, clean_window_nll=5.31,
               noise_known_nll=3.40)
    old = {k: v for k, v in row.items()
           if k not in ("noise_window_nll", "noise_unigram_nll", "clean_window_nll", "noise_known_nll")}
    lines = study_markdown(pd.DataFrame([row, {**old, "variant": "old", "wrong_note_auroc": float("nan")}])).splitlines()
    assert lines[2].endswith("| 5.93 → 5.79 | 5.86 / 4.20 / 5.31 | 3.40 |")
    assert "| old | 300 | 5.17 | 1.01 | – |" in lines[3] and lines[3].endswith("| 5.93 → 5.79 | – | – |")


def test_study_conclusion_compares_every_variant_with_the_counting_learner():
    from lossprofile.embedded.study import conclusion

    base = dict(pieces=300, heldout_nll=5.0, wrong_note_auroc=0.6, onset_peak=2.0, spearman_length_delta=0.3,
                noise_nll_early=5.9, noise_nll_late=5.8, clean_window_nll=5.2, noise_unigram_nll=4.18)
    rows = [dict(base, variant="reference", repeat_ratio=1.0, assimilation=0.55, noise_window_nll=5.80),
            dict(base, variant="big", repeat_ratio=0.06, assimilation=0.44, noise_window_nll=4.19)]
    text = conclusion(pd.DataFrame(rows))
    assert "pays 4.18 nats per code; against it 'reference' pays +1.62, 'big' pays +0.01." in text
    assert "the ones that copy ('big')" in text


def test_continued_variants_are_read_against_their_own_control_not_the_reference():
    from lossprofile.embedded.study import conclusion

    base = dict(pieces=300, wrong_note_auroc=0.6, spearman_length_delta=0.3, noise_nll_early=5.9, noise_nll_late=5.8,
                noise_unigram_nll=4.18, repeat_ratio=1.0)
    rows = [dict(base, variant="reference", heldout_nll=5.0, onset_peak=2.0, assimilation=0.55, clean_window_nll=5.2,
                 noise_window_nll=5.80, lm_steps=4000),
            dict(base, variant="continued: control", heldout_nll=3.70, onset_peak=1.70, assimilation=0.40,
                 clean_window_nll=3.75, noise_window_nll=4.15, lm_steps=600, repeat_ratio=0.06),
            dict(base, variant="continued: + texture clouds", heldout_nll=3.72, onset_peak=1.60, assimilation=-0.05,
                 clean_window_nll=3.75, noise_window_nll=3.70, lm_steps=600, repeat_ratio=0.07)]
    text = conclusion(pd.DataFrame(rows))
    assert "Continued from the base model for 600 steps, the control assimilates with +0.40" in text
    assert "'continued: + texture clouds': assimilation -0.05 (-0.45 against the control), noise window 3.70 (-0.45)" in text
    assert "Assimilation < 0: 'continued: + texture clouds'." in text
    assert "continued: control: assimilation" not in text  # not read against the from-scratch reference
