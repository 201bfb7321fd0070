"""MoodStream's emotion models: data only, found with
``get_package_share_directory("moodstream_models") / "models"``."""
