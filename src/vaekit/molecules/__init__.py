"""Molecules: RDKit helpers (:mod:`.chem`) and molecular properties (:mod:`.properties`: QED, logP, SA,
penalized logP, weight). RDKit is an optional dependency (``pip install 'vaekit[molecules]'``), imported only
inside the functions that use it."""
