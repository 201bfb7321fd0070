"""MoodStream bridge: relays emotions out of ROS."""
