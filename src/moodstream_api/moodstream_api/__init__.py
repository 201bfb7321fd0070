"""MoodStream's single-image HTTP mood API (`moodstream serve`): no ROS, not part of a robot's graph."""
