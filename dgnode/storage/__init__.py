"""Artefact locations: a local path or an ``s3://`` URI, resolved in one place.

See :mod:`dgnode.storage.location` (what holds on both kinds), :mod:`dgnode.storage.s3` (endpoint
and credentials from the AWS environment, S3 errors as one line) and
:mod:`dgnode.storage.exclusive` (create-if-absent, the one thing locks need).
"""

from dgnode.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "dgnode.storage.location": ("Location", "resolve"),
    "dgnode.storage.s3": ("S3Settings", "s3_error", "s3_filesystem"),
    "dgnode.storage.exclusive": ("create_exclusive", "delete_if_unchanged", "read_versioned"),
})
