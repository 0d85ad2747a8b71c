"""``vaekit explore``: a local web page for moving through one run's latent space.

- :mod:`.session`: the run and the examples it maps, and every answer (no web framework);
- :mod:`.app`: the FastAPI app, its request models and serving it with uvicorn (the ``explore`` extra,
  imported only when the command runs);
- ``static/index.html``: the page (plain HTML with one inline script; no build step, nothing fetched from
  elsewhere), shipped as package data.
"""
