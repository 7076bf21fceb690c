"""``records(pipe)``: hypothesis strategies of the inputs a pipeline declares valid.

What a pipeline declares about its inputs is read, without running any user code, from
three places: the first stage's data annotation (a list of an attrs record class or of a
``TypedDict``, or ``list[dict[str, V]]``), the config's ``feature_names`` (and
``rename_fields``, ``flatten_nested_inputs``, ``nested_field_delimiter``: a name with the
delimiter is a nested path of the input) and, for ``input_format="numpy"``, the
``numpy_dtype``. A drawn record is what goes *into* the pipeline: renamed fields under
their source name, nested paths as nested dicts.

Nothing is guessed: a field whose type is not declared anywhere (``feature_names`` with
an untyped first stage, ``numpy`` without ``numpy_dtype``) is an error naming it, unless
the caller gives its strategy with ``fields=``.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
from typing_extensions import NotRequired, Required, get_type_hints, is_typeddict

from packflow.config import BackendConfig, InputFormat
from packflow.exceptions import PackflowError

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

    from packflow.graph import CheckedPipeline

__all__ = ["NothingDeclaredError", "UndeclaredFieldError", "batches", "records"]

#: A strategy or, when nothing declares one, the reason why not.
_Leaf = Any

_BATCHES = ("list", "Sequence", "MutableSequence", "Collection", "Iterable")


class NothingDeclaredError(PackflowError, ValueError):
    """The pipeline does not declare enough about its inputs to generate them.

    ``pipeline`` names the pipeline, ``fields`` the fields whose type is unknown (empty
    when not even the fields are known).
    """

    def __init__(self, message: str, *, pipeline: str, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.pipeline = pipeline
        self.fields = fields


class UndeclaredFieldError(PackflowError, ValueError):
    """``records(pipe, fields=...)`` names a field the pipeline does not declare.

    ``pipeline`` names the pipeline, ``field`` the field, ``declared`` the fields the
    pipeline does declare (a strategy for any other would never reach its first stage).
    """

    def __init__(
        self, message: str, *, pipeline: str, field: str, declared: tuple[str, ...]
    ) -> None:
        super().__init__(message)
        self.pipeline = pipeline
        self.field = field
        self.declared = declared


#: The options of ``hypothesis.strategies.floats`` that ``floats=`` may set.
_FLOAT_OPTIONS = ("min_value", "max_value", "exclude_min", "exclude_max", "allow_subnormal")


class _Strategies:
    """``hypothesis.strategies`` whose ``floats()`` also applies the caller's ``floats=``.

    Every float a pipeline declares (``float`` fields, float numpy dtypes, the floats
    of an ``Any``) is drawn through it, so one ``floats=dict(min_value=0, max_value=1)``
    bounds them all.
    """

    def __init__(self, st: Any, floats: Mapping[str, Any]) -> None:
        self._st = st
        self._floats = dict(floats)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._st, name)

    def floats(self, **options: Any) -> Any:
        bounds = dict(self._floats)
        width = options.get("width", 64)
        if width < 64:
            # hypothesis wants bounds a narrower float holds exactly: move them inwards.
            for key, direction in (("min_value", 1.0), ("max_value", -1.0)):
                if bounds.get(key) is not None:
                    bounds[key] = _narrowed(float(bounds[key]), width, direction)
        return self._st.floats(**{**options, **bounds})


def _narrowed(value: float, width: int, direction: float) -> float:
    """The ``width``-bit float nearest to ``value`` on the side ``direction`` points to."""
    import numpy as np

    kind = np.float32 if width == 32 else np.float16
    narrow = kind(value)
    if (float(narrow) - value) * direction < 0 or not np.isfinite(narrow):
        narrow = np.nextafter(narrow, kind(np.inf * direction))
    return float(narrow)


def _float_options(floats: Mapping[str, Any] | None) -> dict[str, Any]:
    given = dict(floats or {})
    for key in given:
        if key not in _FLOAT_OPTIONS:
            from packflow._text import closest

            match = closest(str(key), _FLOAT_OPTIONS)
            hint = f"did you mean {match!r}? " if match else ""
            raise TypeError(
                f"records(floats=...): {key!r} is not an option of the float strategy; "
                f"{hint}(options: {', '.join(_FLOAT_OPTIONS)})"
            )
    return given


def _hypothesis() -> Any:
    try:
        from hypothesis import strategies
    except ImportError as exc:
        raise ImportError(
            "packflow.testing.records needs hypothesis, a test-time dependency that is "
            "not installed: pip install hypothesis (or pip install 'packflow[test]')"
        ) from exc
    return strategies


def records(
    pipe: Any,
    *,
    fields: Mapping[str, SearchStrategy[Any]] | None = None,
    floats: Mapping[str, Any] | None = None,
) -> SearchStrategy[dict[str, Any]]:
    """A hypothesis strategy of single input records that ``pipe`` declares valid.

    Parameters
    ----------
    pipe
        A :class:`~packflow.Pipeline`, a composition (its first part is read), a class
        backend (class or instance) or a built instance.
    fields
        Strategies for fields, by the name the first stage sees (a ``feature_names``
        entry, a rename target, a ``TypedDict`` key): they fill in fields whose type is
        not declared and replace the declared ones (e.g. a narrower range). When the
        pipeline declares its fields, a name it does not declare is an error.
    floats
        Options for every float the pipeline declares, at once (``float`` fields, float
        numpy dtypes): ``min_value``, ``max_value``, ``exclude_min``, ``exclude_max``,
        ``allow_subnormal``; e.g. ``floats=dict(min_value=-1e6, max_value=1e6)``. NaN
        and infinities are never drawn.

    Returns
    -------
    SearchStrategy[dict[str, Any]]
        Records as they go into the pipeline: renamed fields under their source names,
        nested paths (``"user.age"``) as nested dicts. Floats are finite (JSON has no
        NaN); optional keys (``NotRequired``, attrs defaults) are sometimes left out.

    Raises
    ------
    NothingDeclaredError
        When the pipeline declares no fields (an untyped first stage and no
        ``feature_names``), or fields without types (``feature_names`` but an untyped
        first stage, ``numpy`` without ``numpy_dtype``): the message names them and
        says what to declare.
    UndeclaredFieldError
        When ``fields`` names a field the pipeline does not declare; the message lists
        the declared ones.
    TypeError
        When ``floats`` holds an option the float strategy does not have.
    ImportError
        When hypothesis is not installed.
    ConfigError, PipelineDefinitionError, PipelineTypeError
        When the pipeline does not check.

    Examples
    --------
    >>> from typing import TypedDict
    >>> from packflow import Pipeline
    >>> class Reading(TypedDict):
    ...     celsius: float
    >>> pipe = Pipeline("to_kelvin")
    >>> @pipe.execute
    ... def to_kelvin(records: list[Reading]) -> list[dict[str, float]]:
    ...     return [{"kelvin": r["celsius"] + 273.15} for r in records]
    >>> sorted(records(pipe).example())
    ['celsius']
    """
    st = _Strategies(_hypothesis(), _float_options(floats))
    name, checked = _first_part(pipe)
    config: BackendConfig = checked.config
    given = dict(fields or {})
    found: dict[str, tuple[_Leaf, bool]] | None
    if config.input_format is InputFormat.NUMPY:
        found = _numpy_fields(st, config)
    else:
        found = _record_fields(st, checked)
        if found is None:
            whole = _whole_record(st, checked)
            if whole is not None and not given:
                return whole  # type: ignore[no-any-return]
            if not given:
                raise NothingDeclaredError(
                    f"pipeline {name!r} declares nothing about its input records: its "
                    f"first stage {_first_stage(checked)} takes "
                    f"{_shown(_first_type(checked))} and it has no feature_names. "
                    "Annotate the first stage with a list of a TypedDict or attrs record "
                    "class (def execute(records: list[Row])), or give the fields' "
                    "strategies: records(pipe, fields={'x': st.integers()})",
                    pipeline=name,
                )
    leaves = found if found is not None else {}
    if found is not None:
        _check_given_fields(name, given, tuple(found))
    for key, strategy in given.items():
        required = leaves[key][1] if key in leaves else True
        leaves[key] = (strategy, required)
    unknown = tuple(key for key, (leaf, _) in leaves.items() if isinstance(leaf, str))
    if unknown:
        reasons = "; ".join(f"{key!r}: {leaves[key][0]}" for key in unknown)
        raise NothingDeclaredError(
            f"pipeline {name!r} does not declare the type of {len(unknown)} input "
            f"field{'s' if len(unknown) != 1 else ''} ({reasons}). Declare it, or give "
            f"a strategy: records(pipe, fields={{{unknown[0]!r}: st.floats()}})",
            pipeline=name,
            fields=unknown,
        )
    paths = {_input_path(key, config): leaf for key, leaf in leaves.items()}
    return _nest(st, paths)  # type: ignore[no-any-return]


def batches(
    pipe: Any,
    *,
    min_size: int = 1,
    max_size: int = 20,
    fields: Mapping[str, SearchStrategy[Any]] | None = None,
    floats: Mapping[str, Any] | None = None,
) -> SearchStrategy[list[dict[str, Any]]]:
    """Lists of :func:`records` of ``pipe``: batches to call it with.

    Raises as :func:`records` does.
    """
    st = _hypothesis()
    strategy = records(pipe, fields=fields, floats=floats)
    return st.lists(strategy, min_size=min_size, max_size=max_size)  # type: ignore[no-any-return]


def _check_given_fields(name: str, given: Mapping[str, Any], declared: tuple[str, ...]) -> None:
    from packflow._text import closest

    for key in given:
        if key in declared:
            continue
        match = closest(str(key), declared)
        hint = f"did you mean {match!r}? " if match else ""
        raise UndeclaredFieldError(
            f"records(pipe, fields=...): pipeline {name!r} does not declare a field "
            f"{key!r}; {hint}its first stage receives "
            f"{', '.join(repr(field) for field in declared) or 'no fields'}",
            pipeline=name,
            field=str(key),
            declared=declared,
        )


# -- what the pipeline declares --------------------------------------------------------


def _first_part(pipe: Any) -> tuple[str, CheckedPipeline]:
    """The first part's name and checked pipeline: what receives the input."""
    from packflow.parts import check_definition

    try:
        checked = check_definition(pipe)
    except TypeError:
        raise TypeError(
            f"records() takes a Pipeline, a composition, an InferenceBackend or a built "
            f"pipeline, not {type(pipe).__name__}"
        ) from None
    return checked.parts[0]


def _first_stage(checked: CheckedPipeline) -> str:
    stage = checked.graph.stages[0]
    return f"{stage.kind.value} `{stage.name}` ({stage.location})"


def _first_type(checked: CheckedPipeline) -> Any:
    stage = checked.graph.stages[0]
    return checked.report.data_types.get(stage.kind.value, Any)


def _shown(annotation: Any) -> str:
    from packflow.typecheck import format_type

    try:
        return format_type(annotation)
    except Exception:
        return repr(annotation)


def _element(annotation: Any) -> Any:
    """``E`` of ``list[E]`` (or another batch), else ``None``."""
    annotation = _plain(annotation)
    origin = typing.get_origin(annotation)
    if origin is None or getattr(origin, "__name__", "") not in _BATCHES:
        return None
    args = typing.get_args(annotation)
    return _plain(args[0]) if len(args) == 1 else None


def _plain(annotation: Any) -> Any:
    """``annotation`` without ``Annotated`` and type aliases."""
    while True:
        value = getattr(annotation, "__value__", None)  # `type X = ...` aliases
        if value is not None:
            annotation = value
            continue
        if typing.get_origin(annotation) is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        return annotation


def _record_fields(st: Any, checked: CheckedPipeline) -> dict[str, tuple[_Leaf, bool]] | None:
    """The first stage's record fields: key -> (strategy or why unknown, required).

    ``None`` when the pipeline declares no fields at all.
    """
    config: BackendConfig = checked.config
    element = _element(_first_type(checked))
    features = _stage_features(config)
    declared = _declared_fields(st, element) if element is not None else None
    if declared is not None and features:
        # Fields the preprocessor does not hand on never reach the stage.
        kept = {_stage_key(feature, config) for feature in features}
        return {key: leaf for key, leaf in declared.items() if key in kept}
    if declared is not None:
        return declared
    value = _mapping_value(element)
    if not features:
        return None
    untyped = "feature_names lists it, but the first stage's records are not typed"
    if value is None or value is Any:
        return {feature: (untyped, True) for feature in features}
    strategy = _strategy(st, value)
    return {feature: (strategy, True) for feature in features}


def _whole_record(st: Any, checked: CheckedPipeline) -> Any:
    """For ``list[dict[str, V]]`` (``V`` declared) without feature_names: any such dict."""
    if _stage_features(checked.config):
        return None
    value = _mapping_value(_element(_first_type(checked)))
    if value is None or value is Any:
        return None
    return st.dictionaries(st.text(), _strategy(st, value))


def _mapping_value(element: Any) -> Any:
    """``V`` of ``dict[str, V]`` / ``Mapping[str, V]``, else ``None``."""
    origin = typing.get_origin(element)
    if origin is None or getattr(origin, "__name__", "") not in ("dict", "Mapping"):
        return None
    args = typing.get_args(element)
    return _plain(args[1]) if len(args) == 2 else Any


def _stage_key(feature: str, config: BackendConfig) -> str:
    """The top-level key under which the first stage finds ``feature``."""
    if config.flatten_nested_inputs:
        return feature
    return feature.split(config.nested_field_delimiter)[0]


def _stage_features(config: BackendConfig) -> tuple[str, ...]:
    """The keys the preprocessor hands on: the features, then renamed fields it keeps."""
    features = tuple(config.feature_names)
    if not features or config.input_format is InputFormat.NUMPY:
        return features
    kept = tuple(new for new in config.rename_fields.values() if new not in features)
    return (*features, *kept)


def _declared_fields(st: Any, element: Any) -> dict[str, tuple[_Leaf, bool]] | None:
    """A TypedDict's or attrs class's fields, or ``None`` for any other type."""
    if is_typeddict(element):
        return {
            key: (_strategy(st, hint), required)
            for key, (hint, required) in _typeddict_keys(element).items()
        }
    cls = typing.get_origin(element) or element
    if isinstance(cls, type) and attrs.has(cls):
        hints = _attrs_hints(element)
        return {
            field.name: (_strategy(st, hints[field.name]), field.default is attrs.NOTHING)
            for field in attrs.fields(cls)
            if field.init
        }
    return None


def _typeddict_keys(cls: Any) -> dict[str, tuple[Any, bool]]:
    """Each key's type and whether it is required.

    Read from the annotations themselves: under ``from __future__ import annotations``
    Python 3.10 and 3.11 cannot see ``NotRequired`` in a string annotation, so their
    ``__required_keys__`` lists every key.
    """
    hints = get_type_hints(cls, include_extras=True)
    required_keys = getattr(cls, "__required_keys__", frozenset(hints))
    keys = {}
    for key, hint in hints.items():
        required = key in required_keys
        origin: Any = typing.get_origin(hint)
        while origin in (Required, NotRequired, typing.Annotated):
            if origin is not typing.Annotated:
                required = origin is Required
            hint = typing.get_args(hint)[0]
            origin = typing.get_origin(hint)
        keys[key] = (hint, required)
    return keys


def _attrs_hints(element: Any) -> dict[str, Any]:
    cls = typing.get_origin(element) or element
    hints = get_type_hints(cls)
    parameters = getattr(cls, "__parameters__", ())
    arguments = typing.get_args(element)
    if parameters and arguments:
        binding = dict(zip(parameters, arguments, strict=False))
        from packflow.typecheck import substitute

        hints = {key: substitute(hint, binding) for key, hint in hints.items()}
    return {field.name: hints.get(field.name, Any) for field in attrs.fields(cls)}


def _numpy_fields(st: Any, config: BackendConfig) -> dict[str, tuple[_Leaf, bool]]:
    # The numpy format refuses a config without feature_names, so the columns are known.
    if config.numpy_dtype is None:
        leaf: _Leaf = "numpy_dtype is not set, so the column type is inferred per batch"
    else:
        leaf = _dtype_strategy(st, config.numpy_dtype)
    return {feature: (leaf, True) for feature in config.feature_names}


def _dtype_strategy(st: Any, dtype_name: str) -> _Leaf:
    import numpy as np

    dtype = np.dtype(dtype_name)
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return st.integers(int(info.min), int(info.max))
    if dtype.kind == "f":
        width = dtype.itemsize * 8 if dtype.itemsize * 8 in (16, 32, 64) else 64
        return st.floats(allow_nan=False, allow_infinity=False, width=width)
    if dtype.kind == "U":
        return st.text()
    return f"numpy_dtype {dtype_name!r} has no plain JSON value to generate"


# -- types to strategies ---------------------------------------------------------------

_JSON_SCALARS = ("none", "booleans", "integers", "text")


def _strategy(st: Any, annotation: Any) -> Any:
    """Values of ``annotation`` as a record carries them (attrs classes as dicts)."""
    annotation = _plain(annotation)
    if annotation is Any or annotation is object:
        floats = st.floats(allow_nan=False, allow_infinity=False)
        return st.one_of(*(getattr(st, name)() for name in _JSON_SCALARS), floats)
    if annotation is None or annotation is type(None):
        return st.none()
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        return st.integers()
    if annotation is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if annotation is str:
        return st.text()
    if annotation is bytes:
        return st.binary()
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return st.sampled_from([member.value for member in annotation])
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin is typing.Union or origin is types.UnionType:
        return st.one_of(*(_strategy(st, arg) for arg in args))
    declared = _declared_fields(st, annotation)
    if declared is not None:
        return st.fixed_dictionaries(
            {key: leaf for key, (leaf, required) in declared.items() if required},
            optional={key: leaf for key, (leaf, required) in declared.items() if not required},
        )
    name = getattr(origin, "__name__", "")
    if name in _BATCHES or name in ("set", "frozenset", "AbstractSet"):
        item = _strategy(st, args[0]) if args else _strategy(st, Any)
        return st.lists(item, max_size=5)
    if name == "tuple":
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(_strategy(st, args[0]), max_size=5).map(tuple)
        return st.tuples(*(_strategy(st, arg) for arg in args))
    if name in ("dict", "Mapping", "MutableMapping"):
        key, value = args if len(args) == 2 else (str, Any)
        return st.dictionaries(_strategy(st, key), _strategy(st, value), max_size=5)
    return st.from_type(annotation)


# -- input shape -----------------------------------------------------------------------


def _input_path(key: str, config: BackendConfig) -> tuple[str, ...]:
    """Where the value the first stage sees under ``key`` sits in an input record."""
    sources = {new: old for old, new in config.rename_fields.items()}
    name = sources.get(key, key)
    is_path = (
        config.flatten_nested_inputs
        or key in sources
        or key in config.feature_names
        or config.input_format is InputFormat.NUMPY
    )
    return tuple(name.split(config.nested_field_delimiter)) if is_path else (name,)


def _nest(st: Any, leaves: Mapping[tuple[str, ...], tuple[Any, bool]]) -> Any:
    """One dict strategy from values at key paths; a nested dict is required if any of
    its values is."""
    required: dict[str, Any] = {}
    optional: dict[str, Any] = {}
    groups: dict[str, dict[tuple[str, ...], tuple[Any, bool]]] = {}
    for path, (leaf, needed) in leaves.items():
        if len(path) == 1:
            (required if needed else optional)[path[0]] = leaf
        else:
            groups.setdefault(path[0], {})[path[1:]] = (leaf, needed)
    for key, inner in groups.items():
        needed = any(flag for _, flag in inner.values())
        (required if needed else optional)[key] = _nest(st, inner)
    return st.fixed_dictionaries(required, optional=optional)
