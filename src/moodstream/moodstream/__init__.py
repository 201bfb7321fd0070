"""MoodStream bringup and runner."""
