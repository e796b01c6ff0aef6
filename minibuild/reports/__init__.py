"""Reports over built images: sizes of a catalog, diffs between builds, SBOMs, an HTML page.

The engine knows nothing of these; they read what a build leaves in `.minibuild/out/<pkg>/<name>/`
(summary.json, layers.json, oci/) and, for the SBOM, the sysroot's dpkg database. Rich rendering
lives in `render.py` (ui.py stays the only other module importing rich).
"""
