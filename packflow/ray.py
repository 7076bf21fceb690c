"""Run a pipeline on Ray Data, when one machine is not enough (extra ``ray``).

:func:`map_batches` runs an *unbuilt* pipeline (a ``Pipeline``, a composition, or an
``InferenceBackend`` class) over a ``ray.data.Dataset``: a pool of actors each builds
its own instance once (the initializers run there, never in the driver), with the
config overrides given here, and every batch goes through the instance's ``run_batch``.
:func:`run_jsonl` runs a JSON Lines file the same way and writes JSON Lines in input
order; ``packflow run --engine ray`` calls it.

What Ray Data would do quietly is refused or made explicit (see
``docs/ray.md``, "Scaling out with Ray Data"):

- order: ``ordered=True`` (default) sets ``preserve_order`` on the dataset's
  ``DataContext``, which is shared with the dataset it was derived from;
- schema: the output columns are fixed (``packflow_index``, ``packflow_record`` and,
  with ``on_error="row"``, ``error``), so no column that some batches lack is dropped;
  records travel pickled in one column, so their keys and nested values (numpy arrays
  included) come back exactly as the pipeline made them;
- failures: a record that fails is an error row (``on_error="row"``) or fails the job
  (``"raise"``); a context that would drop blocks (``max_errored_blocks``) or retry a
  deterministic error (``actor_task_retry_on_errors``) is refused;
- pickling: the pipeline is pickled in the driver, before the job starts, and one that
  cannot be is refused naming what could not be pickled.
"""

from __future__ import annotations

import ast
import functools
import importlib.machinery
import inspect
import io
import json
import os
import pickle
import subprocess
import sys
import types
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, cast

from packflow.backend import InferenceBackend, built_pipeline
from packflow.compose import ComposedPipeline
from packflow.exceptions import PipelineDefinitionError
from packflow.pipeline import Pipeline, _import_pipeline
from packflow.prebuilt.extras import import_extra
from packflow.runtime.built import BuiltPipeline
from packflow.runtime.isolation import (
    ERROR_KEY,
    OnError,
    check_on_error,
    error_row,
    is_error_row,
)
from packflow.runtime.jsonl import KEPT_FAILED_LINES, LineError, RunSummary, parse_line, serialize

if TYPE_CHECKING:
    from ray.data import Dataset

__all__ = [
    "ERROR_COLUMN",
    "INDEX_COLUMN",
    "RECORD_COLUMN",
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
#: A line of JSON (``run_jsonl``): the input line in, the output line out.
_LINE_COLUMN = "packflow_line"

DEFAULT_BATCH_SIZE = 1024
_WHO = "packflow.ray"


class UnpicklablePipelineError(PipelineDefinitionError, TypeError):
    """The pipeline (or its config) cannot be pickled, so it cannot be sent to Ray.

    ``problems`` names each part that could not be pickled, and why.
    """


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


# --------------------------------------------------------------------------- pickling


@functools.lru_cache(maxsize=4)
def _fresh_path(pythonpath: str | None) -> tuple[str, ...] | None:
    """``sys.path`` of a fresh interpreter of this environment: what a worker starts with.

    Entries the driver added at run time (``sys.path.insert``, a project folder that
    ``LocalLoader`` put there, pytest's rootdir) are not in it; ``None`` when it cannot
    be found out.
    """
    del pythonpath  # the cache key: a fresh interpreter reads it from the environment
    try:
        done = subprocess.run(
            [sys.executable, "-c", "import json, sys; print(json.dumps(sys.path[1:]))"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        found = json.loads(done.stdout)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return tuple(str(entry) for entry in found)


_IMPORTABLE: dict[tuple[str, str | None], bool] = {}


def _importable(module_name: str) -> bool:
    """Whether a worker could import ``module_name`` by name and get the same file.

    ``__main__``, a module made at run time (no import spec) and one found only through
    a ``sys.path`` entry the driver added are not: what they define must travel by
    value.
    """
    if module_name == "__main__":
        return False
    module = sys.modules.get(module_name)
    if module is None:
        return True
    spec = getattr(module, "__spec__", None)
    if spec is None:
        return False
    key = (module_name.partition(".")[0], os.environ.get("PYTHONPATH"))
    known = _IMPORTABLE.get(key)
    if known is None:
        known = _IMPORTABLE[key] = _found_by_fresh_interpreter(key[0])
    return known


def _found_by_fresh_interpreter(top: str) -> bool:
    if top in sys.builtin_module_names:
        return True
    module = sys.modules.get(top)
    origin = getattr(getattr(module, "__spec__", None), "origin", None)
    if not isinstance(origin, str) or not os.path.isabs(origin):
        return True  # frozen or namespace: nothing to compare
    path = _fresh_path(os.environ.get("PYTHONPATH"))
    if path is None:
        return True
    found = importlib.machinery.PathFinder.find_spec(top, list(path))
    if found is None or not isinstance(found.origin, str):
        return False
    return os.path.realpath(found.origin) == os.path.realpath(origin)


@functools.lru_cache(maxsize=1)
def _pickler_class() -> type:
    cloudpickle = import_extra("ray.cloudpickle", "ray", _WHO)

    class _Pickler(cloudpickle.Pickler):  # type: ignore[misc, name-defined]
        """cloudpickle, plus: what a worker cannot import travels by value.

        A pipeline bound in a module that a worker cannot import (``__main__``, a module
        made at run time, a project file that ``LocalLoader`` loaded from a folder it
        put on ``sys.path``) is pickled as its definition rather than by reference, and
        the functions, classes and module objects of such a module by value.
        """

        def reducer_override(self, obj: Any) -> Any:
            if isinstance(obj, (Pipeline, ComposedPipeline)):
                reduced = obj.__reduce__()
                if reduced[0] is _import_pipeline and not _importable(reduced[1][0]):
                    if isinstance(obj, Pipeline):
                        from packflow.pipeline import _rebuild_pipeline

                        return (_rebuild_pipeline, (obj._definition(),))
                    from packflow.compose import _rebuild_composed

                    return (_rebuild_composed, (obj.parts, obj.name))
                return reduced
            if isinstance(obj, (types.FunctionType, type, types.ModuleType)):
                name = obj.__name__ if isinstance(obj, types.ModuleType) else obj.__module__
                module = sys.modules.get(name) if isinstance(name, str) else None
                if module is not None and name != "__main__" and not _importable(name):
                    cloudpickle.register_pickle_by_value(module)
            reduced = super().reducer_override(obj)
            if isinstance(obj, types.FunctionType) and isinstance(reduced, tuple):
                _add_annotation_globals(obj, reduced)
            return reduced

    return _Pickler


def _add_annotation_globals(func: types.FunctionType, reduced: tuple[Any, ...]) -> None:
    """Ship the globals that ``func``'s string annotations name, when it goes by value.

    cloudpickle sends only the globals a function's code uses; with ``from __future__
    import annotations`` the annotations are strings naming other globals (``Records``,
    a config class), which the type check in the worker must resolve.
    """
    try:
        slotstate = reduced[2][1]
        shipped = slotstate["__globals__"]
    except (IndexError, KeyError, TypeError):
        return
    for annotation in func.__annotations__.values():
        if not isinstance(annotation, str):
            continue
        try:
            tree = ast.parse(annotation, mode="eval")
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in func.__globals__:
                shipped.setdefault(node.id, func.__globals__[node.id])


def _dumps(obj: Any) -> bytes:
    buffer = io.BytesIO()
    _pickler_class()(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buffer.getvalue()


def _describe(obj: Any) -> str:
    try:
        where = f"{inspect.getsourcefile(obj)}:{inspect.getsourcelines(obj)[1]}"
    except (OSError, TypeError):
        where = "?"
    return f"`{getattr(obj, '__qualname__', obj)}` ({where})"


def _why(obj: Any) -> str | None:
    try:
        _dumps(obj)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _function_problems(what: str, func: Any) -> list[str]:
    reason = _why(func)
    if reason is None:
        return []
    try:
        seen = inspect.getclosurevars(func)
    except (TypeError, ValueError):
        seen = None
    found: list[str] = []
    if seen is not None:
        for kind, names in (("closure variable", seen.nonlocals), ("global", seen.globals)):
            for name, value in names.items():
                why = _why(value)
                if why is not None:
                    found.append(
                        f"{what} {_describe(func)}: its {kind} `{name}` "
                        f"({type(value).__name__}) cannot be pickled: {why}"
                    )
    return found or [f"{what} {_describe(func)} cannot be pickled: {reason}"]


def _pipeline_problems(pipeline: Any, prefix: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(pipeline, ComposedPipeline):
        for name, part in zip(pipeline.part_names, pipeline.parts, strict=True):
            found += _pipeline_problems(part, f"{prefix}{name}.")
    elif isinstance(pipeline, Pipeline):
        name, flags, config, initializers, stages = pipeline._definition()
        for func in initializers:
            found += _function_problems(f"initializer {prefix}{func.__name__}", func)
        for kind, func in stages.items():
            found += _function_problems(f"stage {prefix}{kind}", func)
        for key, value in config.items():
            why = _why(value)
            if why is not None:
                found.append(f"config {prefix}{key} ({type(value).__name__}): {why}")
        why = _why(flags["config_model"])
        if why is not None:
            found.append(f"the config model of {prefix or name!r}: {why}")
    elif isinstance(pipeline, type):
        for attribute, value in vars(pipeline).items():
            if attribute.startswith("__"):
                continue
            why = _why(value)
            if why is not None:
                found.append(f"{pipeline.__name__}.{attribute} ({type(value).__name__}): {why}")
    return found


def _payload(pipeline: Any, config: Mapping[str, Any]) -> bytes:
    """The pipeline and its config overrides, pickled as the actors will receive them.

    Raises
    ------
    UnpicklablePipelineError
        Naming each stage, initializer, closure variable or config value that cannot
        be pickled.
    """
    try:
        return _dumps((pipeline, dict(config)))
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        found = _pipeline_problems(pipeline)
        for key, value in config.items():
            why = _why(value)
            if why is not None:
                found.append(f"config override {key!r} ({type(value).__name__}): {why}")
        name = getattr(pipeline, "name", getattr(pipeline, "__name__", repr(pipeline)))
        problems = found or [reason]
        raise UnpicklablePipelineError(
            f"pipeline {name!r} cannot be sent to Ray workers: it must be pickled, and "
            + "; ".join(problems),
            problems,
        ) from exc


def _unbuilt(pipeline: Any, config: Mapping[str, Any] | None) -> tuple[Any, dict[str, Any]]:
    """What the actors build, and with which overrides; refuses a built instance."""
    overrides = dict(config or {})
    if isinstance(pipeline, InferenceBackend):
        # Constructed already (initialize() ran here): ship the class and the config it
        # was made with, so that each actor constructs its own.
        return type(pipeline), {**pipeline._packflow_overrides, **overrides}
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


def _build(pipeline: Any, config: dict[str, Any]) -> BuiltPipeline:
    if isinstance(pipeline, type):
        return built_pipeline(pipeline(**config))
    built: BuiltPipeline = pipeline.build(**config)
    return built


# --------------------------------------------------------------------------- the actor


def _loads_record(payload: bytes) -> Any:
    return pickle.loads(payload)


def _dumps_record(record: Any) -> bytes:
    try:
        return pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return _dumps(record)  # a lambda or a local class in an output


_FAST_DUMPS = functools.partial(pickle.dumps, protocol=pickle.HIGHEST_PROTOCOL)


def _error_body(output: Any) -> Any:
    """The ``error`` of an error row, else ``None`` (a record may hold an ``error`` key)."""
    return output[ERROR_KEY] if is_error_row(output) else None


class _NotJSON(ValueError):
    """An input line that holds no record; stands for its record in the batch."""


def _parse_line(raw: bytes | None) -> Any:
    """The record on a (non-blank) line, or a :class:`_NotJSON` saying why there is none.

    The rules and messages of ``packflow run`` (:func:`packflow.runtime.jsonl.parse_line`;
    the driver took a byte order mark off the first line already).
    """
    if raw is None:
        return _NotJSON("the line is missing")
    parsed = parse_line(raw, 0)
    return parsed if isinstance(parsed, dict) else _NotJSON(parsed or "a blank line")


class PipelineActor:
    """The callable class Ray runs: builds the pipeline once, then runs batches.

    Made by Ray, one per actor, from what :func:`map_batches` pickled in the driver;
    not meant to be constructed by hand. ``__call__`` takes and returns a
    ``pyarrow.Table``.
    """

    def __init__(self, payload: bytes, on_error: str, output: str) -> None:
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
        self.built = _build(pipeline, config)
        self.on_error: OnError = check_on_error(on_error)
        self.output = output
        pa = _pa()
        self._pa = pa
        self._error_type = _error_type()
        fields = [(INDEX_COLUMN, pa.int64())]
        fields.append(
            (_LINE_COLUMN, pa.string()) if output == "jsonl" else (RECORD_COLUMN, pa.binary())
        )
        if self.on_error == "row":
            fields.append((ERROR_COLUMN, self._error_type))
        self.schema = pa.schema(fields)

    # -- one batch ---------------------------------------------------------------------

    def __call__(self, batch: Any) -> Any:
        names = batch.column_names
        size = batch.num_rows
        index = batch.column(INDEX_COLUMN) if INDEX_COLUMN in names else None
        positions: list[int] | None = None
        if index is not None and (self.on_error == "row" or _LINE_COLUMN in names):
            positions = index.to_pylist()
        if RECORD_COLUMN in names:
            records = list(map(pickle.loads, batch.column(RECORD_COLUMN).to_pylist()))
        elif _LINE_COLUMN in names:
            records = [_parse_line(raw) for raw in batch.column(_LINE_COLUMN).to_pylist()]
        else:
            # A dataset of plain columns: each row as Arrow holds it.
            records = batch.to_pylist()
        outputs = self._run(records, positions)
        if index is None:
            index = self._pa.nulls(size, self._pa.int64())
        return self._table(outputs, index, positions, size)

    def _run(self, records: list[Any], positions: list[int] | None) -> list[Any]:
        if not records:
            return []
        bad = [i for i, r in enumerate(records) if isinstance(r, _NotJSON)]
        if bad and self.on_error == "raise":
            first_bad = positions[bad[0]] if positions else bad[0]
            raise ValueError(f"input record {first_bad}: {records[bad[0]]}")
        if self.on_error == "raise":
            return self.built.run_batch(records)
        first = positions[0] if positions else 0
        contiguous = positions is None or positions == list(range(first, first + len(records)))
        if not bad and contiguous:
            return self.built.run_rows(records, first_index=first)
        where = positions if positions is not None else list(range(len(records)))
        failed = set(bad)
        keep = [i for i in range(len(records)) if i not in failed]
        outputs: list[Any] = [None] * len(records)
        for i in bad:
            # As ``packflow run`` reports a line that holds no record.
            body = {"type": "InvalidLine", "message": str(records[i]), "stage": "input"}
            outputs[i] = {ERROR_KEY: {**body, "index": where[i]}}
        if keep:

            def mark(exc: BaseException, index: int, attempted: int | None) -> Any:
                at = keep[index]
                return error_row(
                    exc, where[at], attempted_index=index if attempted is None else attempted
                )

            results = self.built.run_rows([records[i] for i in keep], mark=mark)
            for i, result in zip(keep, results, strict=True):
                outputs[i] = result
        return outputs

    def _table(
        self, outputs: list[Any], index: Any, positions: list[int] | None, size: int
    ) -> Any:
        pa = self._pa
        row_mode = self.on_error == "row"
        payloads: list[Any] | None = None
        errors: list[Any] | None = None
        if self.output == "records":
            try:
                payloads = list(map(_FAST_DUMPS, outputs))
            except Exception:
                payloads = None  # something in an output needs cloudpickle, or fails
            if payloads is not None and row_mode:
                errors = [_error_body(output) for output in outputs]
                for i, error in enumerate(errors):
                    if error is not None:
                        payloads[i] = None
        if payloads is None:
            payloads, errors = self._encode_each(outputs, positions, size)
        columns = [index, pa.array(payloads, self.schema.field(1).type)]
        if row_mode:
            if errors is None or not any(e is not None for e in errors):
                columns.append(pa.nulls(size, self._error_type))
            else:
                columns.append(pa.array(errors, self._error_type))
        return pa.Table.from_arrays(columns, schema=self.schema)

    def _encode_each(
        self, outputs: list[Any], positions: list[int] | None, size: int
    ) -> tuple[list[Any], list[Any]]:
        """Each output pickled (or as a JSON line), finding the ones that cannot be."""
        row_mode = self.on_error == "row"
        errors: list[Any] = [None] * size
        payloads: list[Any] = [None] * size
        encode = self._encode_line if self.output == "jsonl" else _dumps_record
        for i, output in enumerate(outputs):
            body = _error_body(output) if row_mode else None
            if body is not None:
                errors[i] = body
                if self.output == "jsonl":
                    payloads[i] = json.dumps(output, ensure_ascii=False)
                continue
            try:
                payloads[i] = encode(output)
            except Exception as exc:
                if not row_mode:
                    raise
                where = positions[i] if positions else i
                body = {
                    "type": type(exc).__name__,
                    "message": str(exc) if self.output == "jsonl" else f"cannot be sent: {exc}",
                    "stage": "output",
                    "index": where,
                }
                errors[i] = body
                if self.output == "jsonl":
                    payloads[i] = json.dumps({ERROR_KEY: body}, ensure_ascii=False)
        return payloads, errors

    @staticmethod
    def _encode_line(output: Any) -> str:
        return serialize(output)  # as ``packflow run`` writes it, key paths in its errors


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
    **ray_options: Any,
) -> Dataset:
    """Run ``pipeline`` over ``ds`` on a pool of Ray actors; returns a new (lazy) Dataset.

    Each actor builds the pipeline once, with ``config`` applied, when it starts; every
    batch then runs through that instance. The output has one row per input row, in the
    same order (with ``ordered=True``), and fixed columns: ``packflow_index`` (the
    record's position when the input has one, as from :func:`from_records`, else null),
    ``packflow_record`` (the output record, pickled; null for an error row) and, with
    ``on_error="row"``, ``error`` (``{"type", "message", "stage", "index"}`` or null).
    :func:`iter_records` gives the outputs back as records.

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
    **ray_options
        Other arguments of ``Dataset.map_batches`` (``num_cpus``, ``memory``,
        ``runtime_env``, ...).

    Raises
    ------
    UnpicklablePipelineError
        Before the job starts, when the pipeline or config cannot be pickled.
    TypeError
        For a built instance or something that is not a pipeline.
    ValueError
        For a bad ``concurrency``, ``batch_size`` or ``on_error``, or a ``DataContext``
        that would drop blocks or retry deterministic errors.
    """
    ray = _ray()
    if not isinstance(ds, ray.data.Dataset):
        raise TypeError(
            f"packflow.ray.map_batches runs over a ray.data.Dataset, got {type(ds).__name__}; "
            "make one from a list of records with packflow.ray.from_records(records)"
        )
    checked = check_on_error(on_error)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    clash = sorted(_OWN_ARGUMENTS & ray_options.keys())
    if clash:
        raise TypeError(f"packflow.ray.map_batches sets {', '.join(clash)} itself")
    target, overrides = _unbuilt(pipeline, config)
    payload = _payload(target, overrides)
    result = _map(
        ds, payload, checked, "records", concurrency, batch_size, num_gpus, ordered, ray_options
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
        fn_constructor_kwargs={"payload": payload, "on_error": on_error, "output": output},
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

    An error row comes back as ``{"error": {"type", "message", "stage", "index"}}``,
    as the in-process ``built(records, on_error="row")`` gives it.
    """
    batches: Iterable[Any] = ds.iter_batches(batch_size=None, batch_format="pyarrow")
    for batch in batches:
        payloads = batch.column(RECORD_COLUMN).to_pylist()
        if ERROR_COLUMN in batch.column_names:
            for payload, error in zip(
                payloads, batch.column(ERROR_COLUMN).to_pylist(), strict=True
            ):
                yield {ERROR_KEY: error} if error is not None else _loads_record(payload)
        else:
            yield from map(_loads_record, payloads)


# --------------------------------------------------------------------------- JSON Lines


def _read_lines(
    source: str | os.PathLike[str], block_size: int
) -> tuple[list[Any], list[int], array[int]]:
    """Arrow blocks of the non-blank lines of ``source``, where the blank ones were, and
    each non-blank line's number.

    A blank line is not a record; ``blanks`` holds, for each, the number of records
    before it, so that the output can keep a blank line in its place.
    """
    pa = _pa()
    schema = pa.schema([(INDEX_COLUMN, pa.int64()), (_LINE_COLUMN, pa.binary())])
    tables: list[Any] = []
    blanks: list[int] = []
    numbers: array[int] = array("q")
    lines: list[bytes] = []
    count = 0

    def flush() -> None:
        nonlocal count
        if lines:
            index = pa.array(range(count, count + len(lines)), pa.int64())
            tables.append(
                pa.Table.from_arrays([index, pa.array(lines, pa.binary())], schema=schema)
            )
            count += len(lines)
            lines.clear()

    with open(source, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                blanks.append(count + len(lines))
                continue
            numbers.append(number)
            lines.append(raw.rstrip(b"\r\n"))
            if len(lines) >= block_size:
                flush()
    flush()
    return tables, blanks, numbers


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

    The output is what ``packflow run`` writes in process
    (:func:`packflow.runtime.jsonl.run_lines`), line for line: output line N belongs to
    input line N; a record's output, a blank line for a blank line, or an error row
    ``{"error": {"type", "message", "stage", "index", "line"}}`` (``index`` counts the
    non-blank lines from 0) for a line that holds no JSON object, a record that failed
    or an output that is not JSON. Lines are parsed and outputs written as JSON in the
    actors; the driver only reads and writes text, and adds the line numbers.

    Parameters
    ----------
    max_errors
        Stop writing after this many failed lines (Ray has run the job by then).
    report
        Called with each failed line, in order.

    Returns
    -------
    RunSummary
        Lines read and written, and the failed lines.

    Raises
    ------
    UnpicklablePipelineError, TypeError, ValueError
        As :func:`map_batches`; with ``on_error="raise"``, the job's error when a
        record fails or a line is not JSON.
    OSError
        When ``source`` cannot be read.
    """
    ray = _ray()
    checked = check_on_error(on_error)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if max_errors is not None and (
        isinstance(max_errors, bool) or not isinstance(max_errors, int) or max_errors < 1
    ):
        raise ValueError(f"max_errors must be an integer >= 1 or None, got {max_errors!r}")
    target, overrides = _unbuilt(pipeline, config)
    payload = _payload(target, overrides)
    tables, blanks, numbers = _read_lines(source, batch_size)
    blank_at = iter(blanks)
    next_blank = next(blank_at, None)
    records = 0  # non-blank lines answered
    written = failed = 0
    failures: list[LineError] = []
    stopped: str | None = None
    if tables:
        ds = ray.data.from_arrow(_spread(tables))
        out = _map(ds, payload, checked, "jsonl", concurrency, batch_size, None, True, {})
        for batch in out.iter_batches(batch_size=None, batch_format="pyarrow"):
            indices = batch.column(INDEX_COLUMN).to_pylist()
            if indices != list(range(records, records + len(indices))):
                raise RuntimeError(
                    f"packflow.ray.run_jsonl: Ray returned records {indices[:3]}... where "
                    f"record {records} was due; the output would be out of order"
                )
            if checked == "row":
                bodies = batch.column(ERROR_COLUMN).to_pylist()
            else:
                bodies = [None] * batch.num_rows
            parts: list[str] = []
            for line, body in zip(batch.column(_LINE_COLUMN).to_pylist(), bodies, strict=True):
                while next_blank is not None and next_blank == records:
                    parts.append("")
                    next_blank = next(blank_at, None)
                if body is not None:
                    problem = LineError(
                        numbers[records],
                        body["type"],
                        body["message"],
                        body["stage"],
                        body["index"],
                    )
                    failed += 1
                    if len(failures) < KEPT_FAILED_LINES:
                        failures.append(problem)
                    if report is not None:
                        report(problem)
                    line = json.dumps(problem.row(), ensure_ascii=False)
                parts.append(line)
                records += 1
                if max_errors is not None and failed >= max_errors:
                    stopped = f"{failed} failed lines (max_errors={max_errors})"
                    break
            written += len(parts)
            sink.write("\n".join(parts) + "\n")
            if stopped is not None:
                break
    expected = sum(t.num_rows for t in tables)
    if stopped is None:
        if records != expected:
            raise RuntimeError(
                f"packflow.ray.run_jsonl: Ray returned {records} of {expected} records"
            )
        while next_blank is not None:
            sink.write("\n")
            written += 1
            next_blank = next(blank_at, None)
    read = len(numbers) + len(blanks)
    return RunSummary(read, written, failed, tuple(failures), stopped)
