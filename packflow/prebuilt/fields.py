"""Small pipelines over record fields, meant to follow a model with ``>>``.

``threshold`` turns a score into a yes/no field; ``label_map`` turns class labels into
names. Each is an ordinary pipeline whose settings live in its config, so the override
file can change them (by part name in a composition) and the pipeline pickles by
reference to this module.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from packflow._text import closest, describe, short_repr
from packflow.config import BackendConfig
from packflow.exceptions import ConfigError, RecordFieldError
from packflow.pipeline import Pipeline
from packflow.records import Records

__all__ = ["LabelMapConfig", "ThresholdConfig", "label_map", "threshold"]

_MISSING = object()
#: Checked by type first: an ABC check per record is slow, and numpy scalars need it.
_PLAIN_NUMBERS = (float, int)


@attrs.frozen(kw_only=True)
class ThresholdConfig(BackendConfig):
    """The config of a :func:`threshold` pipeline.

    Attributes
    ----------
    field
        The numeric field to compare (a dotted path reaches into nested dicts:
        ``"output_probability.1"``).
    at
        The threshold: ``label_field`` is ``True`` when the value is at least ``at``.
    label_field
        The field that receives ``True`` or ``False``.
    """

    field: str
    at: float
    label_field: str


@attrs.frozen(kw_only=True)
class LabelMapConfig(BackendConfig):
    """The config of a :func:`label_map` pipeline.

    Attributes
    ----------
    fields
        The fields whose labels are mapped (dotted paths reach into nested dicts).
    mapping
        ``{"label": name}``; labels are matched by their text, so ``0`` and ``"0"`` are
        the same label and the mapping can come from a JSON override file.
    """

    fields: list[str]
    mapping: dict[str, Any]


def _read(record: Any, path: str, index: int) -> Any:
    """The value at ``path`` in ``record``: the key itself, else a dotted path."""
    if not isinstance(record, dict):
        raise RecordFieldError(
            f"record {index} is {describe(record)}, not a dict; cannot read field {path!r}",
            index=index,
            field=path,
        )
    value = record.get(path, _MISSING)
    if value is not _MISSING:
        return value
    value = record
    for step in path.split("."):
        value = _child(value, step)
        if value is _MISSING:
            keys = [str(key) for key in record]
            match = closest(path, keys)
            suggestion = f" (did you mean {match!r}?)" if match else ""
            raise RecordFieldError(
                f"record {index} has no field {path!r}{suggestion}; fields: "
                f"{', '.join(keys) or 'none'}",
                index=index,
                field=path,
            )
    return value


def _child(value: Any, step: str) -> Any:
    if not isinstance(value, dict):
        return _MISSING
    found = value.get(step, _MISSING)
    if found is not _MISSING:
        return found
    # Model outputs key classes by number ({0: 0.9, 1: 0.1}); a path is text.
    for key, child in value.items():
        if str(key) == step:
            return child
    return _MISSING


def apply_threshold(records: Records, config: ThresholdConfig) -> Records:
    """Execute: copy each record, adding ``label_field`` = ``field >= at``."""
    field, at, label_field = config.field, config.at, config.label_field
    out: Records = []
    for index, record in enumerate(records):
        value = _read(record, field, index)
        if type(value) not in _PLAIN_NUMBERS and (
            isinstance(value, bool) or not isinstance(value, numbers.Real)
        ):
            raise RecordFieldError(
                f"record {index}: field {field!r} is {describe(value)}; threshold compares "
                "numbers",
                index=index,
                field=field,
            )
        out.append({**record, label_field: bool(value >= at)})
    return out


def apply_label_map(records: Records, config: LabelMapConfig) -> Records:
    """Execute: copy each record with its labels mapped (a dict field: its keys)."""
    mapping = config.mapping
    out: Records = []
    for index, record in enumerate(records):
        mapped = dict(record)
        for field in config.fields:
            value = _read(record, field, index)
            if isinstance(value, dict):
                named = {_name(mapping, key, field, index): v for key, v in value.items()}
                _write(mapped, field, named)
            elif isinstance(value, (list, tuple)):
                raise RecordFieldError(
                    f"record {index}: field {field!r} holds a {type(value).__name__} "
                    f"({short_repr(value)}); label_map maps a label, or the keys of a dict",
                    index=index,
                    field=field,
                )
            else:
                _write(mapped, field, _name(mapping, value, field, index))
        out.append(mapped)
    return out


def _name(mapping: Mapping[str, Any], label: Any, field: str, index: int) -> Any:
    try:
        return mapping[str(label)]
    except KeyError:
        raise RecordFieldError(
            f"record {index}: field {field!r} holds the label {label!r}, which the mapping "
            f"does not name; it names {', '.join(repr(key) for key in mapping)}",
            index=index,
            field=field,
        ) from None


def _write(record: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` in ``record`` (a copy), copying the nested dicts on the way."""
    if path in record or "." not in path:
        record[path] = value
        return
    steps = path.split(".")
    node = record
    for step in steps[:-1]:
        key = _key(node, step)
        child = dict(node[key])
        node[key] = child
        node = child
    node[_key(node, steps[-1])] = value


def _key(node: dict[Any, Any], step: str) -> Any:
    if step in node:
        return step
    return next(key for key in node if str(key) == step)


def threshold(
    field: str, at: float, label_field: str, *, name: str = "threshold", **config: Any
) -> Pipeline:
    """A pipeline that marks each record whose ``field`` is at least ``at``.

    Every record comes back with the extra field ``label_field`` (``True`` or
    ``False``); the caller's records are not changed.

    Parameters
    ----------
    field
        The numeric field (a dotted path reaches into nested dicts, and matches numeric
        keys by their text: ``"output_probability.1"``).
    at
        The threshold.
    label_field
        The field to add.
    name
        The pipeline's name (its part name in a composition).
    **config
        Other :class:`~packflow.BackendConfig` fields.

    Raises
    ------
    ConfigError
        When ``at`` is not a number.

    A record without ``field``, or with a value that is not a number, fails the call
    with a :class:`~packflow.StageError` caused by a
    :class:`~packflow.exceptions.RecordFieldError` naming the record and the field.

    Examples
    --------
    >>> high = threshold("score", 0.5, "high")
    >>> high([{"score": 0.7}, {"score": 0.2}])
    [{'score': 0.7, 'high': True}, {'score': 0.2, 'high': False}]
    """
    if isinstance(at, bool) or not isinstance(at, (int, float)):
        raise ConfigError(f"threshold: at must be a number, got {describe(at)}", field="at")
    pipe = Pipeline(
        name,
        config_model=ThresholdConfig,
        field=field,
        at=float(at),
        label_field=label_field,
        **config,
    )
    pipe.add_execute(apply_threshold)
    return pipe


def label_map(
    field: str | Sequence[str],
    mapping: Mapping[Any, Any],
    *,
    name: str = "label_map",
    **config: Any,
) -> Pipeline:
    """A pipeline that replaces class labels with names.

    A field holding a label is replaced by its name; a field holding a dict (per-class
    probabilities) gets its keys replaced. Labels are matched by their text, so a model's
    ``0`` finds the mapping's ``0`` or ``"0"``.

    Parameters
    ----------
    field
        The field, or a list of fields, to map (dotted paths reach into nested dicts).
    mapping
        Label to name.
    name
        The pipeline's name (its part name in a composition).
    **config
        Other :class:`~packflow.BackendConfig` fields.

    Raises
    ------
    ConfigError
        When two labels of ``mapping`` have the same text (``0`` and ``"0"``).

    A label the mapping does not name fails the call with a
    :class:`~packflow.StageError` caused by a
    :class:`~packflow.exceptions.RecordFieldError` naming the record, the field and
    the label: a label is never passed on unmapped.

    Examples
    --------
    >>> names = label_map("label", {0: "cat", 1: "dog"})
    >>> names({"label": 1, "score": 0.9})
    {'label': 'dog', 'score': 0.9}
    """
    fields = [field] if isinstance(field, str) else list(field)
    by_text: dict[str, Any] = {}
    for label, value in mapping.items():
        text = str(label)
        if text in by_text:
            raise ConfigError(
                f"label_map: the labels {label!r} and another with the same text {text!r} "
                "are both in the mapping; labels are matched by their text, so give it once",
                field="mapping",
            )
        by_text[text] = value
    pipe = Pipeline(name, config_model=LabelMapConfig, fields=fields, mapping=by_text, **config)
    pipe.add_execute(apply_label_map)
    return pipe
