"""Training, distillation and float16 TFLite export of MoodStream's emotion model."""
