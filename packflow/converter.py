"""The package's one cattrs converter.

Configs and attrs records are structured and unstructured through this converter, so
that a hook registered once (e.g. for ``InputFormat``) applies everywhere.
"""

from __future__ import annotations

import cattrs

__all__ = ["converter"]

converter = cattrs.Converter(forbid_extra_keys=True)
