"""Source models (config group ``source``): each module's classes register themselves by their ``types``."""
