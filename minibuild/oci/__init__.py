"""OCI images as files: deterministic layers, image config/manifest/index, OCI layouts and docker archives."""
