"""The four-mood view of MoodStream's six emotions (ROS-free).

| emotion | mood | why |
| --- | --- | --- |
| happy | positive | the one clearly pleasant expression |
| sad, angry, fearful | negative | unpleasant expressions |
| neutral | neutral | no expression |
| surprised | other | surprise is as often pleasant as unpleasant: its valence is not in the face |

A mood's probability is the sum of its emotions' probabilities; a label outside this table
(another model's) counts as ``other``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MOODS = ("positive", "negative", "neutral", "other")

EMOTION_TO_MOOD = {
    "happy": "positive",
    "sad": "negative",
    "angry": "negative",
    "fearful": "negative",
    "neutral": "neutral",
    "surprised": "other",
}


def mood_matrix(labels: Sequence[str]) -> np.ndarray:
    """(len(labels), 4) 0/1 matrix: probabilities @ matrix = mood probabilities."""
    matrix = np.zeros((len(labels), len(MOODS)), dtype=np.float32)
    for i, label in enumerate(labels):
        matrix[i, MOODS.index(EMOTION_TO_MOOD.get(label, "other"))] = 1.0
    return matrix


def to_moods(probabilities: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Mood probabilities (..., 4) from emotion probabilities (..., len(labels))."""
    return np.asarray(probabilities, dtype=np.float32) @ mood_matrix(labels)
