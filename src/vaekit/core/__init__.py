"""The maths every model family shares: the batch, importance weights over q(z|x) and p(z), objectives.

Pure torch: nothing here knows files, the CLI or progress bars. Higher layers (``families``, ``training``,
``evaluation``, the tasks in ``apps``) import from here, never the other way round.
"""
