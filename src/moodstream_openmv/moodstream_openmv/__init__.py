"""MoodStream's OpenMV Cam host side: the UART protocol parser and the node that publishes it."""
