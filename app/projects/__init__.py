"""Projects and the context documents agents load."""
