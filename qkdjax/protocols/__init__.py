"""Protocol families (config group ``protocol``): each module's classes register themselves by their ``types``;
modules may also hold the protocol's estimators as plain functions."""
