"""MoodStream capture stage."""
