"""Channel models (config group ``link``): each module's classes register themselves by their ``types``."""
