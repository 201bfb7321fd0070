"""What a robot does about a person's emotion: the decision, without ROS (tested on its own).

A controller should act on the *smoothed* label (the classifier's per-frame label flickers), skip
messages that are too old to describe the present (a stalled pipeline, a replayed bag), skip
uncertain estimates, and react when something changes rather than on every frame.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reaction:
    utterance: str
    #: LED colour, red/green/blue/alpha in [0, 1].
    color: tuple[float, float, float, float]


#: One reaction per smoothed label, and one for nobody in view.
REACTIONS = {
    "happy": Reaction("You look happy! Shall we keep going?", (1.0, 0.8, 0.0, 1.0)),
    "sad": Reaction("You seem a little down. Can I help?", (0.2, 0.3, 1.0, 1.0)),
    "angry": Reaction("I'll give you some space.", (1.0, 0.1, 0.0, 1.0)),
    "neutral": Reaction("Hello there.", (1.0, 1.0, 1.0, 1.0)),
    "surprised": Reaction("Oh! Did something happen?", (1.0, 0.4, 1.0, 1.0)),
    "fearful": Reaction("It's all right, I'll stay still.", (0.3, 1.0, 0.6, 1.0)),
}
NOBODY = Reaction("", (0.0, 0.0, 0.0, 1.0))


@dataclass(frozen=True)
class ReactorConfig:
    max_age_s: float = 1.0  # older messages describe the past: ignored
    min_confidence: float = 0.5  # below it the estimate is too uncertain to act on
    min_interval_s: float = 2.0  # at most one reaction this often, however often the label changes


class EmotionReactor:
    """Turns a stream of (stamp, face, smoothed label, confidence) into reactions on changes only."""

    def __init__(self, config: ReactorConfig | None = None) -> None:
        self.config = config or ReactorConfig()
        self.current: str | None = None  # the label last reacted to ("" for nobody in view)
        self._last_reaction_s = float("-inf")
        self.ignored_stale = 0
        self.ignored_uncertain = 0

    def update(self, stamp_s: float, now_s: float, face_present: bool, label: str,
               confidence: float) -> Reaction | None:
        """The reaction to this message, or None when there is nothing new to do."""
        if now_s - stamp_s > self.config.max_age_s:
            self.ignored_stale += 1
            return None
        if face_present and confidence < self.config.min_confidence:
            self.ignored_uncertain += 1
            return None
        state = label if face_present else ""
        if state == self.current or (face_present and label not in REACTIONS):
            return None
        if now_s - self._last_reaction_s < self.config.min_interval_s:
            return None  # changed, but too soon after the last reaction: wait for a later message
        self.current, self._last_reaction_s = state, now_s
        return REACTIONS[label] if face_present else NOBODY
