"""Detector models (config group ``detector``): each module's classes register themselves by their ``types``."""
