"""Price sets of the ``cost`` config group (``cost=NAME``): what a network's sites and links cost per year."""
