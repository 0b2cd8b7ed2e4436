"""Model backends, one plugin per module, found through the ``ailab.providers`` entry-point group."""
