"""Examples on top of MoodStream: a behaviour controller on the ``emotion`` topic."""
