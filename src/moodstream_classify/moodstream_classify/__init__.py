"""MoodStream classify stage."""
