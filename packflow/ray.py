"""Run a pipeline on Ray Data, when one machine is not enough (extra ``ray``).

:func:`map_batches` runs an *unbuilt* pipeline (a ``Pipeline``, a composition, or an
``InferenceBackend`` class) over a ``ray.data.Dataset``: a pool of actors each builds
its own instance once (the initializers run there, never in the driver), with the
config resolved in the driver (override file included), and every batch goes through
the instance. :class:`RayEngine` is the engine of the JSON Lines protocol
(:func:`packflow.runtime.jsonl.run_lines`); :func:`run_jsonl` and ``packflow run
--engine ray`` are that protocol over it, so they write what the in-process run writes.

What Ray Data would do quietly is refused or made explicit (see ``docs/ray.md``):

- order: ``ordered=True`` (default) sets ``preserve_order`` on the dataset's
  ``DataContext``, which is shared with the dataset it was derived from;
- schema: the output columns are fixed, so no column that some batches lack is
  dropped;
- failures: a record that fails is an error row (``on_error="row"``) or fails the job
  (``"raise"``); a context that would drop blocks (``max_errored_blocks``) or retry a
  deterministic error (``actor_task_retry_on_errors``) is refused;
- config: resolved in the driver, so actors of an existing cluster (``RAY_ADDRESS``),
  whose environment is not the driver's, build with the same config;
- pickling: the pipeline is pickled in the driver (:mod:`packflow.shipping`), before
  the job starts, and one that cannot be is refused naming what could not be pickled.
"""

from __future__ import annotations

import collections.abc
import functools
import io
import itertools
import os
import pickle
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, Literal, cast

import attrs

import packflow.shipping as shipping
from packflow.backend import InferenceBackend, backend_pipeline
from packflow.compose import ComposedPipeline
from packflow.config import CONFIG_FILE_ENV_VAR
from packflow.converter import converter
from packflow.exceptions import UnpicklablePipelineError
from packflow.parts import build_definition, check_definition
from packflow.pipeline import Pipeline
from packflow.prebuilt.extras import import_extra
from packflow.runtime.built import BuiltPipeline
from packflow.runtime.contracts import BatchOptions, check_positive_int
from packflow.runtime.isolation import ERROR_KEY, ErrorRow, OnError, check_on_error
from packflow.runtime.jsonl import LineError, RunSummary, run_around, run_lines

if TYPE_CHECKING:
    from ray.data import Dataset

__all__ = [
    "ERROR_COLUMN",
    "INDEX_COLUMN",
    "RECORD_COLUMN",
    "PipelineActor",
    "RayEngine",
    "UnpicklablePipelineError",
    "from_records",
    "iter_records",
    "map_batches",
    "run_jsonl",
]

#: The column that holds each record, pickled: keys and nested values survive exactly.
RECORD_COLUMN = "packflow_record"
#: The record's position in the input (``from_records`` and ``run_jsonl`` set it).
INDEX_COLUMN = "packflow_index"
#: ``{"type", "message", "stage", "index"}`` of a record that failed, else null; present
#: in every batch with ``on_error="row"``.
ERROR_COLUMN = ERROR_KEY
DEFAULT_BATCH_SIZE = 1024
_WHO = "packflow.ray"


# --------------------------------------------------------------------------- imports


def _ray() -> Any:
    ray = import_extra("ray", "ray", _WHO)
    import_extra("ray.data", "ray", _WHO)
    return ray


def _pa() -> Any:
    return import_extra("pyarrow", "ray", _WHO)


def _error_type() -> Any:
    pa = _pa()
    return pa.struct(
        [
            ("type", pa.string()),
            ("message", pa.string()),
            ("stage", pa.string()),
            ("index", pa.int64()),
        ]
    )


# --------------------------------------------------------------------------- shipping


def _cloudpickle() -> Any:
    return import_extra("ray.cloudpickle", "ray", _WHO)


def _dumps(obj: Any) -> bytes:
    buffer = io.BytesIO()
    shipping.shipper(_cloudpickle())(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buffer.getvalue()


def _unbuilt(pipeline: Any, config: Mapping[str, Any] | None) -> tuple[Any, dict[str, Any]]:
    """What the actors build, and with which overrides; refuses a built instance."""
    overrides = dict(config or {})
    if isinstance(pipeline, InferenceBackend):
        # Constructed already (initialize() ran here): ship the class and the config it
        # was made with, so that each actor constructs its own.
        cls, made_with = pipeline.__packflow_by_value__().args
        return cls, {**made_with, **overrides}
    if isinstance(pipeline, BuiltPipeline):
        raise TypeError(
            f"packflow.ray.map_batches needs the unbuilt pipeline, got the built instance "
            f"{pipeline!r}: pass the Pipeline itself (with config=... for the overrides) "
            "so that each actor builds its own instead of receiving this one's resources"
        )
    if isinstance(pipeline, (Pipeline, ComposedPipeline)) or (
        isinstance(pipeline, type) and issubclass(pipeline, InferenceBackend)
    ):
        return pipeline, overrides
    raise TypeError(
        "packflow.ray.map_batches runs a Pipeline, a composed pipeline or an "
        f"InferenceBackend class, got {type(pipeline).__name__}"
    )


def _resolved(target: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    """The whole config each actor builds with, resolved here, in the driver.

    The override file (``BACKEND_CONFIG_FILE_PATH``) is read where the job is started:
    the actors of an existing cluster (``RAY_ADDRESS``) do not share the driver's
    environment, so they get every field's value instead and never read a file of
    their own.

    Raises
    ------
    ConfigError
        For a bad override, or a missing or unusable override file.
    """
    if isinstance(target, ComposedPipeline):
        configs = target.resolve_configs(**overrides)
        return {name: converter.unstructure(part) for name, part in configs.items()}
    pipeline = backend_pipeline(target) if isinstance(target, type) else target
    plain: dict[str, Any] = converter.unstructure(pipeline.resolve_config(**overrides))
    return plain


def _payload(pipeline: Any, config: Mapping[str, Any] | None = None) -> bytes:
    """What each actor receives: the unbuilt pipeline and its resolved config, pickled.

    Raises
    ------
    UnpicklablePipelineError
        Naming each stage, initializer, closure variable or config value that cannot
        be pickled.
    TypeError
        For a built instance or something that is not a pipeline.
    ConfigError
        For a bad config or override file.
    """
    target, overrides = _unbuilt(pipeline, config)
    return shipping.ship(target, _resolved(target, overrides), _cloudpickle())


# --------------------------------------------------------------------------- columns


def _arrow_type(annotation: Any) -> Any:
    """The Arrow type of values annotated ``annotation``, or ``None`` when there is none.

    Scalars, ``list``/``Sequence`` of one, ``Optional`` of one, and a ``TypedDict`` or
    attrs class (a struct of its fields); ``Any`` and other unions have none.
    """
    pa = _pa()
    scalars = {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}
    scalars[bytes] = pa.binary()
    if isinstance(annotation, type) and annotation in scalars:
        return scalars[annotation]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _arrow_type(args[0])
    if origin is typing.Literal and args and len({type(a) for a in args}) == 1:
        return scalars.get(type(args[0]))
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        return _arrow_type(members[0]) if len(members) == 1 else None
    if origin in (list, collections.abc.Sequence) and len(args) == 1:
        item = _arrow_type(args[0])
        return None if item is None else pa.list_(item)
    fields = _declared_fields(annotation)
    return None if fields is None else pa.struct(fields)


def _declared_fields(cls: Any) -> list[tuple[str, Any]] | None:
    """``(name, Arrow type)`` of each field of a ``TypedDict`` or attrs class, else ``None``."""
    try:
        if isinstance(cls, type) and attrs.has(cls):
            hints = typing.get_type_hints(cls)
            names = [field.name for field in attrs.fields(cls)]
        elif typing.is_typeddict(cls):
            hints = typing.get_type_hints(cls)
            names = list(hints)
        else:
            return None
    except (NameError, TypeError):  # a forward reference that does not resolve
        return None
    fields = [(name, _arrow_type(hints.get(name, Any))) for name in names]
    if any(kind is None for _, kind in fields):
        return None
    return fields


def _declared_schema(target: Any, overrides: dict[str, Any]) -> Any:
    """The output columns the last stage's return type declares, or ``None``.

    A return annotated ``list[T]`` (or ``Sequence[T]``) with ``T`` a ``TypedDict`` or an
    attrs class whose every field has an Arrow type. Checks the pipeline (no user code
    runs): one whose stages do not fit together is refused here, before the job.
    """
    checked = check_definition(target, **overrides).parts[-1][1]
    last = checked.graph.stages[-1].kind.value
    returned = checked.report.return_types.get(last, Any)
    if typing.get_origin(returned) not in (list, collections.abc.Sequence):
        return None
    (item,) = typing.get_args(returned) or (Any,)
    fields = _declared_fields(item)
    return None if not fields else _pa().schema(fields)


def _inferred_schema(rows: list[dict[str, Any]]) -> Any:
    """The columns of ``rows``: every key in order of appearance, types as Arrow infers."""
    pa = _pa()
    keys = dict.fromkeys(key for row in rows for key in row)
    fields = []
    for key in keys:
        try:
            kind = pa.array([row.get(key) for row in rows]).type
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise ValueError(f"output key {key!r} holds values Arrow cannot hold: {exc}") from exc
        fields.append(pa.field(str(key), kind))
    return pa.schema(fields)


class SchemaBoard:
    """A tiny Ray actor that holds a job's output columns: the first proposal wins.

    Without a declared output type, each actor proposes the columns of its first
    answered batch and adopts what the board holds, so that every block of the job has
    the same columns.
    """

    def __init__(self) -> None:
        self.schema: Any = None

    def claim(self, schema: Any) -> Any:
        """The job's columns: ``schema`` if none were fixed before."""
        if self.schema is None:
            self.schema = schema
        return self.schema


def _misfit(row: dict[str, Any], schema: Any) -> tuple[str, str] | None:
    """``(key, why)`` of the first value of ``row`` that does not fit ``schema``."""
    pa = _pa()
    for key, value in row.items():
        kind = schema.field(key).type
        try:
            pa.array([value], type=kind)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            if kind == pa.null():
                return key, (
                    f"{_short(value)} does not fit the column, which held only nulls in the "
                    "first batch and so has Arrow's null type; declare the last stage's "
                    "return type (list[MyTypedDict] or list[MyAttrsClass]) to give it one"
                )
            return key, f"{_short(value)} does not fit the column's Arrow type {kind}: {exc}"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------- the actor


def _dumps_record(record: Any) -> bytes:
    try:
        return pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return _dumps(record)  # a lambda or a local class in an output


_FAST_DUMPS = functools.partial(pickle.dumps, protocol=pickle.HIGHEST_PROTOCOL)


class PipelineActor:
    """The callable class Ray runs: builds the pipeline once, then runs batches.

    Made by Ray, one per actor, from what :func:`map_batches` pickled in the driver;
    not meant to be constructed by hand. ``__call__`` takes and returns a
    ``pyarrow.Table``. ``output`` is ``"pickled"`` (each output pickled in
    ``packflow_record``) or ``"events"`` (the JSON Lines engine: events in and outputs
    out pickled, failures as error rows in place).
    """

    def __init__(
        self,
        payload: bytes,
        on_error: str,
        output: str,
        columns: Any = None,
        board: Any = None,
    ) -> None:
        # The driver resolved the config, override file included: a file named in this
        # worker's own environment must not apply a second time, nor be required.
        os.environ.pop(CONFIG_FILE_ENV_VAR, None)
        try:
            pipeline, config = pickle.loads(payload)
        except ModuleNotFoundError as exc:
            raise ModuleNotFoundError(
                f"a Ray worker could not import {exc.name!r}, which the pipeline is "
                "pickled from: workers import code from installed packages, not from "
                "directories added to sys.path in the driver; pip-install it on every "
                "node or ship it with ray.init(runtime_env={'py_modules': [...]})",
                name=exc.name,
            ) from exc
        self.built = build_definition(pipeline, **config)
        self.on_error: OnError = "row" if output == "events" else check_on_error(on_error)
        self.output = output
        pa = _pa()
        self._pa = pa
        self._error_type = _error_type()
        fields = [(INDEX_COLUMN, pa.int64()), (RECORD_COLUMN, pa.binary())]
        if self.on_error == "row" and output != "events":
            fields.append((ERROR_COLUMN, self._error_type))
        self.schema = pa.schema(fields)
        #: The output columns (``output="columns"``): declared, or fixed by the board.
        self.columns = columns
        self._declared = columns is not None
        self._board = board

    # -- one batch ---------------------------------------------------------------------

    def __call__(self, batch: Any) -> Any:
        names = batch.column_names
        size = batch.num_rows
        index = batch.column(INDEX_COLUMN) if INDEX_COLUMN in names else None
        wanted = self.on_error == "row" or self.output == "columns"
        positions = index.to_pylist() if index is not None and wanted else None
        if RECORD_COLUMN in names:
            records = list(map(pickle.loads, batch.column(RECORD_COLUMN).to_pylist()))
        else:
            # A dataset of plain columns: each row as Arrow holds it.
            records = batch.to_pylist()
        outputs = self._run(records, positions)
        if self.output == "columns":
            return self._columns(outputs, positions)
        if index is None:
            index = self._pa.nulls(size, self._pa.int64())
        return self._table(outputs, index, positions, size)

    def _run(self, records: list[Any], positions: list[int] | None) -> list[Any]:
        if not records:
            return []
        if self.on_error == "raise":
            return self.built.run_batch(records)
        first = positions[0] if positions else 0
        if positions is None or positions == list(range(first, first + len(records))):
            return run_around(self.built, records, first_index=first)
        where = positions  # not a range (after a filter): error rows name input positions

        def mark(exc: BaseException, index: int, attempted: int | None) -> Any:
            at = index if attempted is None else attempted
            return ErrorRow.from_exception(exc, where[index], attempted_index=at).as_row()

        return run_around(self.built, records, mark=mark)

    def _table(
        self, outputs: list[Any], index: Any, positions: list[int] | None, size: int
    ) -> Any:
        pa = self._pa
        with_errors = len(self.schema) == 3
        try:
            payloads: list[Any] = list(map(_FAST_DUMPS, outputs))
        except Exception:
            payloads = self._encode_each(outputs, positions)
        errors: list[Any] | None = None
        if with_errors:
            errors = [None] * size
            for i, output in enumerate(outputs):
                found = ErrorRow.recognize(output)
                if found is not None:
                    errors[i] = found.body()
                    payloads[i] = None
        columns = [index, pa.array(payloads, pa.binary())]
        if with_errors:
            if errors is None or all(e is None for e in errors):
                columns.append(pa.nulls(size, self._error_type))
            else:
                columns.append(pa.array(errors, self._error_type))
        return pa.Table.from_arrays(columns, schema=self.schema)

    def _columns(self, outputs: list[Any], positions: list[int] | None) -> Any:
        """The outputs as a table of the job's columns (and ``error``, with ``"row"``)."""
        pa = self._pa
        row_mode = self.on_error == "row"
        errors: list[Any] = [None] * len(outputs)
        rows: list[Any] = []
        for i, output in enumerate(outputs):
            found = ErrorRow.recognize(output) if row_mode else None
            if found is not None:
                errors[i] = found.body()
                rows.append({})
            elif isinstance(output, dict):
                rows.append(output)
            else:
                self._refuse(i, positions, errors, "", f"is {type(output).__name__}, not a dict")
                rows.append({})
        if self.columns is None:
            answered = [row for row, error in zip(rows, errors, strict=True) if error is None]
            if not answered:
                raise ValueError(
                    "packflow.ray: every record of the first batch failed, so the output "
                    "columns cannot be taken from it; declare them with the last stage's "
                    "return type (list[MyTypedDict] or list[MyAttrsClass])"
                )
            columns = _inferred_schema(answered)
            if row_mode and ERROR_COLUMN in columns.names:
                raise ValueError(
                    f"packflow.ray: the outputs have a key {ERROR_COLUMN!r}, which is the "
                    "error column with on_error='row'; rename it"
                )
            self.columns = (
                _ray().get(self._board.claim.remote(columns)) if self._board else columns
            )
        columns = self.columns
        names = set(columns.names)
        for i, row in enumerate(rows):
            extra = next((key for key in row if key not in names), None)
            if extra is not None:
                how = (
                    "declared by the last stage's return type"
                    if self._declared
                    else ("taken from the first batch")
                )
                why = f"is not one of the output columns ({', '.join(columns.names)}), {how}"
                self._refuse(i, positions, errors, extra, why)
                rows[i] = {}
        while True:
            try:
                table = pa.Table.from_pylist(rows, schema=columns)
                break
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                bad = next(
                    (i, found)
                    for i, found in ((i, _misfit(row, columns)) for i, row in enumerate(rows))
                    if found is not None
                )
                at, (key, why) = bad
                self._refuse(at, positions, errors, key, why)
                rows[at] = {}
        if row_mode:
            error_column = (
                pa.nulls(len(rows), self._error_type)
                if all(e is None for e in errors)
                else pa.array(errors, self._error_type)
            )
            table = table.append_column(pa.field(ERROR_COLUMN, self._error_type), error_column)
        return table

    def _refuse(
        self, i: int, positions: list[int] | None, errors: list[Any], key: str, why: str
    ) -> None:
        """Output ``i`` cannot be a row of the table: an error row, or raise."""
        where = positions[i] if positions else i
        what = f"output of record {where}" + (f", key {key!r}," if key else "")
        message = f"{what} {why}"
        if self.on_error == "raise":
            raise ValueError(f"packflow.ray: {message}")
        errors[i] = ErrorRow("OutputColumnError", message, "output", where).body()

    def _encode_each(self, outputs: list[Any], positions: list[int] | None) -> list[Any]:
        """Each output pickled; one that cannot be gets an error row (``on_error="row"``)."""
        payloads: list[Any] = []
        for i, output in enumerate(outputs):
            try:
                payloads.append(_dumps_record(output))
            except Exception as exc:
                if self.on_error == "raise":
                    raise
                where = positions[i] if positions else i
                row = ErrorRow(type(exc).__name__, f"cannot be sent: {exc}", "output", where)
                outputs[i] = row.as_row()
                payloads.append(_FAST_DUMPS(outputs[i]))
        return payloads


# --------------------------------------------------------------------------- the API


def _compute(concurrency: Any) -> Any:
    ray = _ray()
    if isinstance(concurrency, tuple) and len(concurrency) == 2:
        low, high = concurrency
        if all(isinstance(n, int) and not isinstance(n, bool) for n in concurrency) and (
            1 <= low <= high
        ):
            return ray.data.ActorPoolStrategy(min_size=low, max_size=high)
    elif isinstance(concurrency, int) and not isinstance(concurrency, bool) and concurrency >= 1:
        return ray.data.ActorPoolStrategy(size=concurrency)
    raise ValueError(
        f"concurrency must be a number of actors >= 1 or a (min, max) pair, got {concurrency!r}"
    )


def _check_context(context: Any) -> None:
    problems = []
    if getattr(context, "max_errored_blocks", 0) != 0:
        problems.append(
            f"max_errored_blocks={context.max_errored_blocks} would let Ray drop whole "
            "blocks of records from the output without a word"
        )
    if getattr(context, "actor_task_retry_on_errors", False):
        problems.append(
            "actor_task_retry_on_errors retries a batch that failed, and a record that "
            "always fails is then retried forever"
        )
    if problems:
        raise ValueError(
            "packflow.ray refuses this ray.data.DataContext: "
            + "; ".join(problems)
            + "; set them back to their defaults (use on_error='row' to keep going past "
            "bad records)"
        )


_OWN_ARGUMENTS = frozenset(
    {"fn_constructor_args", "fn_constructor_kwargs", "compute", "batch_format", "concurrency"}
)


def map_batches(
    ds: Dataset,
    pipeline: Any,
    *,
    config: Mapping[str, Any] | None = None,
    concurrency: int | tuple[int, int] = 2,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_gpus: float | None = None,
    on_error: OnError = "raise",
    ordered: bool = True,
    output: Literal["columns", "pickled"] = "columns",
    **ray_options: Any,
) -> Dataset:
    """Run ``pipeline`` over ``ds`` on a pool of Ray actors; returns a new (lazy) Dataset.

    Each actor builds the pipeline once, with the config resolved here (overrides and
    override file), when it starts; every batch then runs through that instance. The
    output has one row per input row, in the same order (with ``ordered=True``).

    With ``output="columns"`` (default) it is an ordinary dataset of the output records:
    one column per output key, nested values as Arrow structs and lists, so that
    ``take_all()`` gives what ``pipeline.build()(rows)`` gives for JSON-like outputs. The
    columns are fixed for the whole job: declared by the last stage's return type when it
    is ``list[T]`` with ``T`` a ``TypedDict`` or attrs class, otherwise those of the first
    batch an actor answers (a key missing from a record is null). A record with a key
    outside them, or a value Arrow cannot put in its column, is an error naming the
    record and the key (an error row with ``on_error="row"``). With ``on_error="row"`` an
    ``error`` column (``{"type", "message", "stage", "index"}``) is always the last
    column, null on good rows (and the other columns null on an error row).

    With ``output="pickled"``, each output travels pickled, exactly as the pipeline made
    it (numpy arrays, tuples, any object): columns ``packflow_index``,
    ``packflow_record`` and, with ``on_error="row"``, ``error``; :func:`iter_records`
    gives the outputs back (it reads both kinds of output).

    Parameters
    ----------
    ds
        The input. A dataset made by :func:`from_records` carries each record exactly;
        any other dataset is read by rows as Arrow holds them (``batch.to_pylist()``).
    pipeline
        An unbuilt ``Pipeline``, a composed pipeline, or an ``InferenceBackend``
        subclass (an instance is re-shipped as its class and config). It must be
        picklable: a pipeline bound in an installed module travels by reference, one
        from a driver script by value.
    config
        Config overrides, applied in each actor: ``build(**config)`` (per part, for a
        composition) or ``Backend(**config)``.
    concurrency
        The number of actors, or a ``(min, max)`` pair for an autoscaling pool.
    batch_size
        Records per pipeline call.
    num_gpus
        GPUs reserved for each actor.
    on_error
        ``"raise"``: a failing record fails the job. ``"row"``: it gets an error row
        and every other record its output.
    ordered
        Keep the input order: sets ``execution_options.preserve_order`` on the
        dataset's ``DataContext``, which is shared with the dataset it was made from.
    output
        ``"columns"``: one column per output key. ``"pickled"``: the outputs pickled,
        for values that are not Arrow-friendly.
    **ray_options
        Other arguments of ``Dataset.map_batches`` (``num_cpus``, ``memory``,
        ``runtime_env``, ...).

    Raises
    ------
    UnpicklablePipelineError
        Before the job starts, when the pipeline or config cannot be pickled.
    ConfigError
        Before the job starts, for a bad config or override file.
    TypeError
        For a built instance or something that is not a pipeline.
    ValueError
        For a bad ``concurrency``, ``batch_size``, ``on_error`` or ``output``, or a
        ``DataContext`` that would drop blocks or retry deterministic errors; in the job
        (``on_error="raise"``), for an output that does not fit the columns.
    """
    ray = _ray()
    if not isinstance(ds, ray.data.Dataset):
        raise TypeError(
            f"packflow.ray.map_batches runs over a ray.data.Dataset, got {type(ds).__name__}; "
            "make one from a list of records with packflow.ray.from_records(records)"
        )
    checked = check_on_error(on_error)
    check_positive_int("batch_size", batch_size)
    clash = sorted(_OWN_ARGUMENTS & ray_options.keys())
    if clash:
        raise TypeError(f"packflow.ray.map_batches sets {', '.join(clash)} itself")
    if output not in ("columns", "pickled"):
        raise ValueError(f"output must be 'columns' or 'pickled', got {output!r}")
    payload = _payload(pipeline, config)
    extra: dict[str, Any] = {}
    if output == "columns":
        target, overrides = _unbuilt(pipeline, config)
        extra["columns"] = _declared_schema(target, overrides)
        if extra["columns"] is None:
            board = ray.remote(num_cpus=0)(SchemaBoard)
            extra["board"] = board.remote()
    result = _map(
        ds,
        payload,
        checked,
        output,
        concurrency,
        batch_size,
        num_gpus,
        ordered,
        ray_options,
        extra,
    )
    return cast("Dataset", result)


def _map(
    ds: Any,
    payload: bytes,
    on_error: OnError,
    output: str,
    concurrency: Any,
    batch_size: int,
    num_gpus: float | None,
    ordered: bool,
    ray_options: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> Any:
    compute = _compute(concurrency)
    _check_context(ds.context)
    if ordered:
        ds.context.execution_options.preserve_order = True
    options = dict(ray_options)
    if num_gpus is not None:
        options["num_gpus"] = num_gpus
    return ds.map_batches(
        PipelineActor,
        fn_constructor_kwargs={
            "payload": payload,
            "on_error": on_error,
            "output": output,
            **(extra or {}),
        },
        compute=compute,
        batch_size=batch_size,
        batch_format="pyarrow",
        udf_modifying_row_count=False,
        **options,
    )


#: Small inputs are still cut into this many blocks, so that every actor gets some.
_MIN_BLOCKS = 8


def _block_rows(total: int, blocks: int | None, block_size: int) -> int:
    if blocks is not None:
        if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
            raise ValueError(f"override_num_blocks must be an integer >= 1, got {blocks!r}")
        return max(1, -(-total // blocks))
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be an integer >= 1, got {block_size!r}")
    return max(1, min(block_size, -(-total // _MIN_BLOCKS)))


def _spread(tables: list[Any]) -> list[Any]:
    """``tables`` cut into at least ``_MIN_BLOCKS`` blocks when they hold enough rows."""
    if len(tables) >= _MIN_BLOCKS:
        return tables
    pa = _pa()
    whole = pa.concat_tables(tables)
    step = _block_rows(whole.num_rows, None, whole.num_rows or 1)
    return [whole.slice(start, step) for start in range(0, whole.num_rows, step)]


def from_records(
    records: Iterable[Any],
    *,
    override_num_blocks: int | None = None,
    block_size: int = DEFAULT_BATCH_SIZE,
) -> Dataset:
    """A dataset of ``records`` for :func:`map_batches`, each carried exactly.

    Each record is pickled into the ``packflow_record`` column with its position in
    ``packflow_index``, so keys, nested values and types survive (Arrow columns would
    fill missing keys with nulls and unify types), and error rows report positions in
    ``records``. The data is split into blocks of ``block_size`` records (smaller when
    there would be fewer than 8 blocks, or into ``override_num_blocks`` blocks) so that
    every actor gets work.
    """
    ray = _ray()
    pa = _pa()
    schema = pa.schema([(INDEX_COLUMN, pa.int64()), (RECORD_COLUMN, pa.binary())])
    rows = list(records)
    step = _block_rows(len(rows), override_num_blocks, block_size)
    tables = [
        pa.Table.from_arrays(
            [
                pa.array(range(start, min(start + step, len(rows))), pa.int64()),
                pa.array([_dumps_record(r) for r in rows[start : start + step]], pa.binary()),
            ],
            schema=schema,
        )
        for start in range(0, len(rows), step)
    ] or [schema.empty_table()]
    return cast("Dataset", ray.data.from_arrow(tables))


def iter_records(ds: Dataset) -> Iterator[Any]:
    """The output records of a :func:`map_batches` dataset, in order.

    Either output: the rows of ``output="columns"`` (without the ``error`` column) or
    the unpickled records of ``output="pickled"``. An error row comes back as
    ``{"error": {"type", "message", "stage", "index"}}``, as the in-process
    ``built(records, on_error="row")`` gives it.
    """
    batches: Iterable[Any] = ds.iter_batches(batch_size=None, batch_format="pyarrow")
    for batch in batches:
        names = batch.column_names
        if RECORD_COLUMN not in names:  # output="columns"
            errors = ERROR_COLUMN in names and (
                batch.schema.field(ERROR_COLUMN).type == _error_type()
            )
            for row in batch.to_pylist():
                error = row.pop(ERROR_COLUMN) if errors else None
                yield {ERROR_KEY: error} if error is not None else row
            continue
        payloads = batch.column(RECORD_COLUMN).to_pylist()
        if ERROR_COLUMN in batch.column_names:
            for payload, error in zip(
                payloads, batch.column(ERROR_COLUMN).to_pylist(), strict=True
            ):
                yield {ERROR_KEY: error} if error is not None else pickle.loads(payload)
        else:
            yield from map(pickle.loads, payloads)


# --------------------------------------------------------------------------- JSON Lines


def _event_blocks(events: Iterator[Any], block_size: int) -> list[Any]:
    """Arrow blocks of ``events`` (records or ``BadLine`` markers), pickled, numbered."""
    pa = _pa()
    schema = pa.schema([(INDEX_COLUMN, pa.int64()), (RECORD_COLUMN, pa.binary())])
    tables: list[Any] = []
    count = 0
    while True:
        block = [_dumps_record(event) for event in itertools.islice(events, block_size)]
        if not block:
            return tables
        index = pa.array(range(count, count + len(block)), pa.int64())
        tables.append(pa.Table.from_arrays([index, pa.array(block, pa.binary())], schema=schema))
        count += len(block)


@attrs.frozen
class RayEngine:
    """The Ray engine of :func:`packflow.runtime.jsonl.run_lines`: actors run the batches.

    ``payload`` is what :func:`map_batches` sends the actors (the unbuilt pipeline and
    its resolved config). The events are read first (one Ray job runs them all, so each
    actor builds the pipeline once), then run in blocks of ``options.max_batch_size``
    by a pool of ``concurrency`` actors; the outputs come back in order, a block at a
    time, with error rows for the records that failed and each ``BadLine`` in its place.
    """

    payload: bytes
    concurrency: int | tuple[int, int] = 2

    @classmethod
    def of(
        cls,
        pipeline: Any,
        *,
        config: Mapping[str, Any] | None = None,
        concurrency: int | tuple[int, int] = 2,
    ) -> RayEngine:
        """The engine for ``pipeline`` (as :func:`map_batches` takes it).

        Raises
        ------
        UnpicklablePipelineError, TypeError, ValueError, ConfigError
            As :func:`map_batches`.
        """
        _compute(concurrency)
        return cls(_payload(pipeline, config), concurrency)

    def batches(self, events: Iterator[Any], options: BatchOptions) -> Iterator[list[Any]]:
        """Run the events on Ray; one list of outputs per block, in order."""
        ray = _ray()
        tables = _event_blocks(events, options.max_batch_size)
        if not tables:
            return
        ds = ray.data.from_arrow(_spread(tables))
        size = options.max_batch_size
        out = _map(ds, self.payload, "row", "events", self.concurrency, size, None, True, {})
        due = 0
        for batch in out.iter_batches(batch_size=None, batch_format="pyarrow"):
            indices = batch.column(INDEX_COLUMN).to_pylist()
            if indices != list(range(due, due + len(indices))):
                raise RuntimeError(
                    f"packflow.ray: Ray returned records {indices[:3]}... where record "
                    f"{due} was due; the output would be out of order"
                )
            due += len(indices)
            yield list(map(pickle.loads, batch.column(RECORD_COLUMN).to_pylist()))
        expected = sum(t.num_rows for t in tables)
        if due != expected:
            raise RuntimeError(f"packflow.ray: Ray returned {due} of {expected} records")


def run_jsonl(
    pipeline: Any,
    source: str | os.PathLike[str],
    sink: IO[str],
    *,
    config: Mapping[str, Any] | None = None,
    concurrency: int | tuple[int, int] = 2,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_error: OnError = "row",
    max_errors: int | None = None,
    report: Callable[[LineError], None] | None = None,
) -> RunSummary:
    """Run the JSON Lines file ``source`` through ``pipeline`` on Ray; write JSON Lines.

    :func:`packflow.runtime.jsonl.run_lines` over a :class:`RayEngine`: the output is
    what ``packflow run`` writes in process, line for line (a record's output, a blank
    line for a blank line, an error row with its line number for a line that holds no
    JSON object, a record that failed or an output that is not JSON), and so is the
    summary. Lines are parsed and outputs written in the driver; the actors run the
    pipeline.

    Parameters
    ----------
    on_error
        ``"row"``: a failed line gets an error row. ``"raise"``: the run stops at the
        first failed line, as in process.
    max_errors
        Stop writing after this many failed lines.
    report
        Called with each failed line, in order.

    Returns
    -------
    RunSummary
        Lines read and written, and the failed lines.

    Raises
    ------
    UnpicklablePipelineError, TypeError, ValueError, ConfigError
        As :func:`map_batches`.
    OSError
        When ``source`` cannot be read.
    """
    check_positive_int("batch_size", batch_size)
    engine = RayEngine.of(pipeline, config=config, concurrency=concurrency)

    def write(line: str) -> None:
        sink.write(line + "\n")

    with open(source, "rb") as lines:
        return run_lines(
            engine,
            lines,
            write,
            max_batch_size=batch_size,
            on_error=on_error,
            max_errors=max_errors,
            report=report,
        )
