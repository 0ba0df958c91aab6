"""VADER scored per sentence (crm_warehouse.enrich.sentiment): the whole-text score and the most negative
sentence's, on texts where they disagree."""

from __future__ import annotations

import pytest
from crm_warehouse.enrich.sentiment import _analyzer, scores, sentences


@pytest.fixture(scope="module")
def analyzer():
    return _analyzer()


def test_sentences_split_on_ends_and_line_breaks():
    assert sentences('The courier said "delivered." I called twice!\nStill nothing? Terrible') == [
        'The courier said "delivered.', "I called twice!", "Still nothing?", "Terrible"]
    assert sentences("no sentence end at all") == ["no sentence end at all"]
    assert sentences("  ") == ["  "]


def test_a_negation_does_not_reach_into_the_next_sentence(analyzer):
    # whole text: VADER's "without" (three words back) flips the next sentence's "terrible" to positive
    text = "Third time contacting @AcmeCare and your store closed early without notice. Absolutely terrible."
    s = scores(analyzer, text)
    assert s["compound"] > 0.05
    assert s["sentence_min"] <= -0.05
    assert s["sentence_min"] == analyzer.polarity_scores("Absolutely terrible.")["compound"]


def test_positive_and_neutral_texts_have_no_negative_sentence(analyzer):
    for text in ("Great experience with @AcmeCare again. Recommended!", "@AcmeCare do you ship to Canada?",
                 "Thanks @AcmeCare for the quick help today, great service!"):
        assert scores(analyzer, text)["sentence_min"] > -0.05, text


def test_one_sentence_scores_as_the_whole_text(analyzer):
    text = "This is the worst product I have ever bought"
    s = scores(analyzer, text)
    assert s["sentence_min"] == s["compound"] < -0.05
