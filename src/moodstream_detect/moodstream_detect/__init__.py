"""MoodStream detect stage."""
