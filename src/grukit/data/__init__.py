"""Data shipped inside the package and the pipelines that batch it.

``grukit.data.text``: The Time Machine and character-level language-model batches.
``grukit.data.series``: bundled time series, CSV loading, windows and scaling.
Bundled files live in ``grukit/data/files`` (provenance in its README).
"""
