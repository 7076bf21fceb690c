"""What every model pipeline does with its model file and its arguments, written once.

A missing file, a file of the wrong kind and a model that does not fit the config are
reported the same way by :func:`~packflow.prebuilt.onnx_model`,
:func:`~packflow.prebuilt.sklearn_model`, :func:`~packflow.prebuilt.xgboost_model` and
:func:`~packflow.prebuilt.lightgbm_model`: one :class:`ModelFileError` naming the file,
every problem listed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from packflow.exceptions import ConfigError, ModelFileError

__all__ = ["model_error", "refuse_string_features", "require_file", "sniff"]


def model_error(where: str, path: str, problems: Sequence[str]) -> ModelFileError:
    """One :class:`ModelFileError` listing every problem found with a model file."""
    if len(problems) == 1:
        return ModelFileError(f"{where}: {problems[0]}", path=path, problems=problems)
    lines = [f"{where} does not fit the config ({len(problems)} problems):"]
    lines += [f"  - {problem}" for problem in problems]
    return ModelFileError("\n".join(lines), path=path, problems=problems)


def require_file(where: str, path: str) -> None:
    """Refuse a model path that is missing or a folder, naming the working directory."""
    if not os.path.isfile(path):
        what = "is a folder, not a file" if os.path.isdir(path) else "does not exist"
        raise ModelFileError(f"{where} {what} (working directory: {os.getcwd()})", path=path)


def sniff(path: str) -> str | None:
    """What a model file looks like from its first bytes, to name a wrong file's kind."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return None
    if head.startswith(b"tree\n") or head.startswith(b"tree\r\n"):
        return "a LightGBM text model (use lightgbm_model)"
    if head[:1] == b"\x80" or head.startswith(b"PK\x03\x04"):
        return "a pickle or a zip (joblib, pickle), which is never loaded: it would run code"
    if head.lstrip()[:1] == b"{" and b'"learner"' in head:
        return "an XGBoost JSON model (use xgboost_model)"
    if head.startswith(b"{L") or head.startswith(b"{$"):
        return "an XGBoost UBJSON model (use xgboost_model)"
    if b"onnx" in head[:64].lower() or head[:2] == b"\x08\x07" or head[:2] == b"\x08\x08":
        return "an ONNX model (use onnx_model)"
    return None


def refuse_string_features(who: str, feature_names: Sequence[str]) -> None:
    """Refuse ``feature_names`` given as one string (a list of its letters otherwise).

    Raises
    ------
    ConfigError
        Naming the argument and what to write instead.
    """
    if isinstance(feature_names, str):
        raise ConfigError(
            f"{who}: feature_names must be a list of field names, got the string "
            f"{feature_names!r}; write feature_names=[{feature_names!r}]",
            field="feature_names",
        )
