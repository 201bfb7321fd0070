"""The controller's decisions, without ROS: stale and uncertain messages ignored, changes only."""

from moodstream_examples.reactions import NOBODY, REACTIONS, EmotionReactor, ReactorConfig


def reactor() -> EmotionReactor:
    return EmotionReactor(ReactorConfig(max_age_s=1.0, min_confidence=0.5, min_interval_s=2.0))


def test_reacts_once_to_a_label_not_to_every_frame():
    r = reactor()
    assert r.update(10.0, 10.1, True, "happy", 0.9) == REACTIONS["happy"]
    assert all(r.update(10.0 + i * 0.1, 10.1 + i * 0.1, True, "happy", 0.9) is None for i in range(1, 30))


def test_stale_and_uncertain_messages_are_ignored():
    r = reactor()
    assert r.update(10.0, 11.5, True, "happy", 0.9) is None and r.ignored_stale == 1
    assert r.update(11.5, 11.5, True, "sad", 0.3) is None and r.ignored_uncertain == 1
    assert r.update(11.5, 11.6, True, "sad", 0.8) == REACTIONS["sad"]


def test_a_change_waits_for_the_interval_then_is_taken():
    r = reactor()
    assert r.update(0.0, 0.0, True, "happy", 0.9) == REACTIONS["happy"]
    assert r.update(1.0, 1.0, True, "angry", 0.9) is None  # too soon
    assert r.update(2.5, 2.5, True, "angry", 0.9) == REACTIONS["angry"]
    assert r.current == "angry"


def test_nobody_in_view_turns_the_led_off_once():
    r = reactor()
    r.update(0.0, 0.0, True, "neutral", 0.9)
    assert r.update(3.0, 3.0, False, "", 0.0) == NOBODY
    assert r.update(3.5, 3.5, False, "", 0.0) is None
    assert NOBODY.utterance == "" and NOBODY.color[:3] == (0.0, 0.0, 0.0)


def test_unknown_labels_are_not_acted_on():
    r = reactor()
    assert r.update(0.0, 0.0, True, "contempt", 0.9) is None and r.current is None
