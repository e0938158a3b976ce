"""Instrument checks (`minidpo.validity`) on planted texts whose answers are counted by hand, and on the data.

| test | mutation it catches |
| --- | --- |
| test_lexicon_validity_counts_by_hand | precision and recall swapped; negatives' hits not counted as false positives |
| test_high_precision_markers_drop_the_ambiguous_ones | the precision bar ignored; a marker kept on too few hits |
| test_planted_edits_move_the_lexicon_the_right_way | an insertion that the lexicon cannot see; a strip that leaves the marker |
| test_answer_containment_whole_words | substring matches inside words ("4" in "45"); case or punctuation breaking a match |
| test_rude_markers_on_the_data_are_precise | (data) the lexicon the experiment derives flagging the original answers (precision < 0.95) or missing most rewrites (recall < 0.7) |
"""

import pytest

from minidpo.data import load_instruction_preferences
from minidpo.judges import derive_markers, marker_rate
from minidpo.validity import (contains_answer, delete_markers, flags, high_precision_markers, insert_marker,
                              lexicon_validity, marker_phrases, short_answer, strip_markers)


def test_lexicon_validity_counts_by_hand():
    positives = ["Obviously, it is four.", "Just look it up, obviously.", "It is four."]
    negatives = ["It is four.", "Obviously the sky is blue."]
    v = lexicon_validity(["obviously"], positives, negatives)
    assert (v.flagged_positives, v.flagged_negatives, v.positives, v.negatives) == (2, 1, 3, 2)
    assert v.precision == pytest.approx(2 / 3) and v.recall == pytest.approx(2 / 3)
    assert lexicon_validity(["nowhere"], positives, negatives).precision == 0.0


def test_high_precision_markers_drop_the_ambiguous_ones():
    positives = ["right, obviously"] * 5 + ["get it? obviously"] * 3
    negatives = ["the right triangle"] * 2 + ["an answer"] * 10
    # "right": 5 hits among positives, 2 among negatives (precision 5/7); "get it": 3 hits, none elsewhere
    assert high_precision_markers(["right", "get it", "obviously"], positives, negatives) == ["get it", "obviously"]
    assert high_precision_markers(["get it"], positives, negatives, min_hits=4) == []


def test_planted_edits_move_the_lexicon_the_right_way():
    markers = ["obviously", "look it up"]
    reply = "Paris is the capital of France."
    rude = insert_marker(reply, "Obviously, look it up yourself.")
    assert flags([reply, rude], markers) == [False, True] and rude.endswith(reply)
    assert insert_marker(reply, "Get it?", where="end") == "Paris is the capital of France. Get it?"
    assert strip_markers(rude, markers) == reply
    with pytest.raises(ValueError, match="where must be"):
        insert_marker(reply, "x", where="middle")


def test_marker_phrases_are_the_clauses_made_of_marker_words_only():
    markers = ["get it", "it together", "obviously", "look it", "it up", "up yourself"]
    texts = ["Paris, obviously. Get it together!", "Look it up yourself.", "Get it together, 2 + 2 = 4.",
             "Obviously the answer is 4."]
    # mutation caught: keeping any clause that holds a marker (it would plant "obviously the answer is 4", content)
    assert marker_phrases(texts, markers) == ["get it together", "look it up yourself"]
    assert marker_phrases(["Obviously."], markers) == []  # one word is below min_words
    assert marker_phrases(["Obviously."], markers, min_words=1) == ["obviously"]


def test_deleting_marker_words_keeps_the_content():
    polite = ["i'd be", "be happy", "happy to", "to help", "help you", "you with", "with that", "indeed"]
    reply = "I'd be happy to help you with that. The capital of Italy is indeed Rome."
    # mutation caught: deleting each marker in turn on the already-edited text leaves "I'd to" behind (the bigrams
    # overlap), and deleting whole sentences would take "The capital of Italy is Rome." with them
    assert delete_markers(reply, polite) == "The capital of Italy is Rome."
    assert delete_markers("Gold melts at 1064 C, obviously, get it?", ["obviously", "get it"]) == "Gold melts at 1064 C?"
    assert delete_markers("No marker here.", polite) == "No marker here."
    assert flags([delete_markers(reply, polite)], polite) == [False]


def test_answer_containment_whole_words():
    assert contains_answer("The answer is 45000 meters, as computed.", "45000 meters")
    assert contains_answer("It's PARIS!", "Paris")
    assert not contains_answer("There are 45 of them.", "4")
    assert short_answer("He goes to the park.") is None and short_answer("Paris.") == "Paris"


def test_rude_markers_on_the_data_are_precise():
    records, _ = load_instruction_preferences(drop_invalid=True)
    rude = [r for r in records if r["half"] == "rude_rewrite"]
    polite = [r for r in records if r["half"] == "polite_rewrite"]
    originals = [r["output"] for r in rude]
    rewrites = [r["rejected"] for r in rude]
    markers = derive_markers(originals, rewrites, [r["chosen"] for r in polite])
    derived = lexicon_validity(markers, rewrites, [r["output"] for r in records])  # as the experiment derives it
    assert derived.precision >= 0.95 and derived.recall >= 0.7, derived
    strict = high_precision_markers(markers, rewrites, [r["output"] for r in records])
    v = lexicon_validity(strict, rewrites, [r["output"] for r in records])
    assert strict and v.precision >= 0.95 and marker_rate(originals, strict) < marker_rate(rewrites, strict)
