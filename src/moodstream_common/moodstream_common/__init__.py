"""Shared parts of MoodStream's nodes."""
