"""The type engine behind :mod:`packflow.typecheck` and :mod:`packflow.valuecheck`.

Private to packflow: ``model`` turns annotations into normalized nodes, ``rules``
compares two nodes. Users import from :mod:`packflow.typecheck`.
"""
