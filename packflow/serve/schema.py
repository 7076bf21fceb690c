"""JSON Schemas of what a pipeline declares it takes and gives, for OpenAPI and V2 metadata.

The input record comes from the first stage's declared element type (a ``TypedDict`` or
an attrs record), else from ``feature_names`` (read through ``rename_fields`` and nested
paths, numbers for a numpy pipeline), else it is any object. The output record comes
from the last stage's declared element type, else it is any object. Nothing here runs
user code: it reads the checked pipeline's type report.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from packflow.config import BackendConfig, InputFormat

__all__ = ["api_document", "model_metadata", "record_schemas"]

_SCALARS: dict[type, dict[str, Any]] = {
    bool: {"type": "boolean"},
    int: {"type": "integer"},
    float: {"type": "number"},
    complex: {"type": "number"},
    str: {"type": "string"},
    bytes: {"type": "string"},
    type(None): {"type": "null"},
}


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__total__")


def _fields_of(tp: Any) -> tuple[dict[str, Any], set[str]] | None:
    """The declared fields of a record class and the required ones, or ``None``."""
    if _is_typeddict(tp):
        hints = typing.get_type_hints(tp, include_extras=False)
        required = set(getattr(tp, "__required_keys__", hints))
        return hints, required
    if isinstance(tp, type) and attrs.has(tp):
        hints = typing.get_type_hints(tp)
        fields = attrs.fields(tp)
        required = {f.name for f in fields if f.default is attrs.NOTHING}
        return {f.name: hints.get(f.name, Any) for f in fields}, required
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return hints, set(hints)
    return None


def type_schema(tp: Any, depth: int = 0) -> dict[str, Any]:
    """The JSON Schema of values of the Python type ``tp`` (``{}`` when unknown)."""
    if tp is Any or tp is object or depth > 8:
        return {}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return type_schema(args[0], depth + 1)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin is typing.Union or origin is types.UnionType:
        return {"anyOf": [type_schema(a, depth + 1) for a in args]}
    supertype = getattr(tp, "__supertype__", None)  # NewType
    if supertype is not None:
        return type_schema(supertype, depth + 1)
    if isinstance(tp, type) and tp in _SCALARS:
        return dict(_SCALARS[tp])
    fields = _fields_of(tp)
    if fields is not None:
        return _object_schema(fields[0], fields[1], depth)
    container = origin if origin is not None else tp
    if isinstance(container, type):
        if issubclass(container, Mapping):
            value = type_schema(args[1], depth + 1) if len(args) == 2 else {}
            return {"type": "object", "additionalProperties": value or True}
        if issubclass(container, tuple) and args and args[-1] is not Ellipsis:
            items = [type_schema(a, depth + 1) for a in args]
            return {"type": "array", "prefixItems": items, "minItems": len(items)}
        if issubclass(container, (Sequence, set, frozenset)) and not issubclass(
            container, (str, bytes)
        ):
            item = type_schema(args[0], depth + 1) if args else {}
            return {"type": "array", "items": item} if item else {"type": "array"}
        if container.__module__ == "numpy" and container.__name__ == "ndarray":
            return {"type": "array"}
        if container.__module__ == "numpy":
            return {"type": "number"}
    return {}


def _object_schema(hints: Mapping[str, Any], required: set[str], depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: type_schema(tp, depth + 1) for name, tp in hints.items()},
    }
    if required:
        schema["required"] = sorted(required & set(hints))
    return schema


def _element(annotation: Any) -> Any:
    """``X`` of ``list[X]`` (or any sequence of ``X``), else ``None``."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if isinstance(origin, type) and issubclass(origin, Sequence) and len(args) == 1:
        return args[0]
    return None


def _features_schema(config: BackendConfig) -> dict[str, Any] | None:
    """The input record that ``feature_names`` (through ``rename_fields``) ask for."""
    features = list(getattr(config, "feature_names", []) or [])
    if not features:
        return None
    numeric = config.input_format is InputFormat.NUMPY
    sources = {new: old for old, new in config.rename_fields.items()}
    delimiter = config.nested_field_delimiter
    root: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
    for feature in features:
        path = sources.get(feature, feature).split(delimiter)
        node = root
        for key in path[:-1]:
            child = node["properties"].setdefault(
                key, {"type": "object", "properties": {}, "required": []}
            )
            if key not in node["required"]:
                node["required"].append(key)
            node = child
        node["properties"][path[-1]] = {"type": "number"} if numeric else {}
        if path[-1] not in node["required"]:
            node["required"].append(path[-1])
    return root


_ANY_RECORD: dict[str, Any] = {"type": "object"}


def record_schemas(checked: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The schemas of one input record and one output record of a checked pipeline.

    ``checked`` is a ``CheckedPipeline`` or a ``CheckedComposition`` (its first part's
    input, its last part's output).
    """
    first, last = checked.parts[0][1], checked.parts[-1][1]
    return _input_schema(first), _output_schema(last)


def _input_schema(checked: Any) -> dict[str, Any]:
    report, stages = checked.report, checked.graph.stages
    if report is not None and stages:
        element = _element(report.data_types.get(stages[0].kind.value, Any))
        if element is not None and _fields_of(element) is not None:
            return type_schema(element)
    return _features_schema(checked.config) or dict(_ANY_RECORD)


def _output_schema(checked: Any) -> dict[str, Any]:
    report, stages = checked.report, checked.graph.stages
    if report is not None and stages:
        element = _element(report.return_types.get(stages[-1].kind.value, Any))
        if element is not None and _fields_of(element) is not None:
            return type_schema(element)
    return dict(_ANY_RECORD)


_ERROR_ROW = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message", "stage", "index"],
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "stage": {"type": "string"},
                "index": {"type": ["integer", "null"]},
                "line": {"type": "integer"},
            },
        }
    },
}
_PROBLEM = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problem_response(description: str) -> dict[str, Any]:
    content = {"application/json": {"schema": _ref("Problem")}}
    return {"description": description, "content": content}


def _predict_operation(name: str, with_name: bool) -> dict[str, Any]:
    row = {"anyOf": [_ref("Output"), _ref("ErrorRow")]}
    operation: dict[str, Any] = {
        "summary": f"Run records through {name}",
        "operationId": "predict_v1" if with_name else "predict",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "anyOf": [
                            _ref("Record"),
                            {"type": "array", "items": _ref("Record")},
                            {
                                "type": "object",
                                "required": ["instances"],
                                "properties": {
                                    "instances": {"type": "array", "items": _ref("Record")}
                                },
                            },
                        ]
                    }
                },
                "application/x-ndjson": {"schema": _ref("Record")},
            },
        },
        "responses": {
            "200": {
                "description": "one output (or error row) per record, in order",
                "content": {
                    "application/json": {
                        "schema": {
                            "anyOf": [
                                _ref("Output"),
                                {"type": "array", "items": row},
                                {
                                    "type": "object",
                                    "properties": {"predictions": {"type": "array", "items": row}},
                                },
                            ]
                        }
                    },
                    "application/x-ndjson": {"schema": row},
                },
            },
            "400": _problem_response("malformed JSON, or not an object, array or instances"),
            "413": _problem_response("body larger than max_body_bytes"),
            "422": {
                "description": "the one record of an object request failed",
                "content": {"application/json": {"schema": _ref("ErrorRow")}},
            },
            "503": _problem_response("not ready, or the queue is full (see Retry-After)"),
        },
    }
    if with_name:
        operation["parameters"] = [
            {"name": "name", "in": "path", "required": True, "schema": {"const": name}}
        ]
    return operation


def api_document(name: str, version: str | None, checked: Any) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a server for the checked pipeline ``checked``."""
    record, output = record_schemas(checked)
    plain = {"200": {"description": "yes"}, "503": _problem_response("no")}
    return {
        "openapi": "3.1.0",
        "info": {"title": f"packflow: {name}", "version": version or "0"},
        "paths": {
            "/predict": {"post": _predict_operation(name, False)},
            "/v1/models/{name}:predict": {"post": _predict_operation(name, True)},
            "/v2/health/live": {"get": {"summary": "the process serves", "responses": plain}},
            "/v2/health/ready": {"get": {"summary": "the pipeline is ready", "responses": plain}},
            "/v2/models/{name}": {
                "get": {"summary": "model metadata", "responses": {"200": {"description": "ok"}}}
            },
            "/v2/models/{name}/ready": {
                "get": {"summary": "the model is ready", "responses": plain}
            },
        },
        "components": {
            "schemas": {
                "Record": record,
                "Output": output,
                "ErrorRow": _ERROR_ROW,
                "Problem": _PROBLEM,
            }
        },
    }


def _fields(schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    properties = schema.get("properties", {})
    required = set(schema.get("required", ()))
    return [
        {"name": key, "schema": value, "required": key in required}
        for key, value in properties.items()
    ]


def model_metadata(name: str, version: str | None, checked: Any) -> dict[str, Any]:
    """``GET /v2/models/{name}``: name, versions, and the declared input and output fields."""
    record, output = record_schemas(checked)
    return {
        "name": name,
        "versions": [version] if version else [],
        "platform": "packflow",
        "inputs": _fields(record),
        "outputs": _fields(output),
    }
