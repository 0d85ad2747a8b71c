"""The maths every model family shares: networks, likelihoods p(x|z), the VAE module, importance weights
over q(z|x) and p(z) (:mod:`.inference`) and objectives (:mod:`.objectives`).

Pure torch: nothing here knows files, the CLI or progress bars. Higher layers (``families``, ``training``,
``evaluation``, ``tasks``) import from here, never the other way round.
"""
