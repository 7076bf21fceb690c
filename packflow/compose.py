"""Composition: ``a >> b`` runs ``b`` on what ``a`` returns.

A :class:`ComposedPipeline` is a sequence of *parts*, each a :class:`~packflow.Pipeline`
or a class-based :class:`~packflow.InferenceBackend` subclass, and has the surface of a
pipeline: ``check()``, ``build()``, calls, ``validate``, ``get_metrics``, ``>>``,
``replace``; loaders and the CLI accept it. The parts are not changed and stay usable
alone.

- **Seams are checked like any edge.** What ``a``'s last stage returns (attrs outputs as
  the dicts they become) is what ``b``'s preprocessor receives; when that preprocessor
  hands records on untouched (``passthrough``, or ``records`` without options), ``b``'s
  first stage is checked against ``a``'s return type itself, and a problem names both
  functions. Every problem of every part and seam comes in one error.
- **Parts keep their own config, initializers and resources.** ``build(a={...})`` gives
  overrides to the part named ``a``; the override file's ``"configs"`` holds one object
  per part name; resources are named by part (``resources={"a.model": fake}``).
- **One call runs every part in turn**, with the one-to-one length check at every seam,
  and metrics labelled by part: ``"a.execute"``, ``"b.preprocess"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import packflow.shipping as shipping
from packflow._text import closest, describe
from packflow.config import BackendConfig, OverrideFile
from packflow.exceptions import ConfigError, PipelineDefinitionError, PipelineTypeError
from packflow.graph import CheckedComposition, CheckedPipeline, Upstream
from packflow.log import get_logger
from packflow.parts import as_parts
from packflow.records import Records, attrs_record_type
from packflow.runtime import BuiltPipeline
from packflow.runtime.surface import LazyDefault
from packflow.shipping import ByValue, caller_modules

if TYPE_CHECKING:
    from packflow.parts import Part

__all__ = ["CheckedComposition", "ComposedPipeline", "compose"]


def _flatten(parts: Sequence[Any]) -> list[Part]:
    flat: list[Part] = []
    for part in parts:
        flat.extend(as_parts(part))
    return flat


def compose(*parts: Any, name: str | None = None) -> ComposedPipeline:
    """The composition of ``parts``, run left to right (what ``a >> b`` makes).

    Nested compositions are flattened: ``(a >> b) >> c`` has the parts ``a``, ``b``,
    ``c``.

    Raises
    ------
    PipelineDefinitionError
        When a part is not a pipeline or backend class, or two parts have one name.
    """
    return ComposedPipeline(parts, name=name)


class ComposedPipeline(LazyDefault[BuiltPipeline]):
    """Parts run one after the other: each receives the records the previous returns.

    Made by ``a >> b`` (or :func:`compose`). See the module docstring.

    Examples
    --------
    >>> from packflow import Pipeline
    >>> double, label = Pipeline("double"), Pipeline("label")
    >>> @double.execute
    ... def times_two(records):
    ...     return [{"y": r["x"] * 2} for r in records]
    >>> @label.execute
    ... def name_it(records):
    ...     return [{"label": "big" if r["y"] > 5 else "small"} for r in records]
    >>> (double >> label)({"x": 3})
    {'label': 'big'}
    """

    def __init__(self, parts: Sequence[Any], *, name: str | None = None) -> None:
        flat = _flatten(parts)
        if len(flat) < 2:
            raise PipelineDefinitionError("a composition needs at least two parts")
        seen: dict[str, Any] = {}
        for part in flat:
            part_name = part.name
            if part_name in seen:
                first = seen[part_name]
                same = " (the same pipeline twice)" if first is part.definition else ""
                raise PipelineDefinitionError(
                    f"two parts of the composition are named {part_name!r}{same}; part names "
                    "must be unique, since configs, resources and metrics are named by part: "
                    "give one of them another name (Pipeline(name=...), or "
                    "pipe.replace() of a Pipeline made under another name)"
                )
            if "." in part_name:
                raise PipelineDefinitionError(
                    f"part name {part_name!r} contains '.', which separates a part from its "
                    'stage or resource in a composition ("a.execute"); rename the pipeline'
                )
            seen[part_name] = part.definition
        self._parts: tuple[Part, ...] = tuple(flat)
        self.name: str = name if name is not None else " >> ".join(seen)
        self._origins = caller_modules()
        self._init_default()

    @property
    def parts(self) -> tuple[Any, ...]:
        """The parts (each a ``Pipeline`` or an ``InferenceBackend`` subclass), in order."""
        return tuple(part.definition for part in self._parts)

    @property
    def part_names(self) -> tuple[str, ...]:
        """The parts' names, in order."""
        return tuple(part.name for part in self._parts)

    def __repr__(self) -> str:
        return f"<ComposedPipeline {self.name!r}: {' >> '.join(self.part_names)}>"

    def __reduce__(self) -> tuple[Any, ...]:
        # As for Pipeline: by reference where it is bound, else by value (its parts,
        # each pickled by reference or by value in turn).
        return shipping.reduce(self, self._origins)

    def __packflow_by_value__(self) -> ByValue:
        """Its parts and name, for pickling by value (see :mod:`packflow.shipping`)."""
        parts = self.parts
        members = dict(zip(self.part_names, parts, strict=True))
        return ByValue(_rebuild_composed, (parts, self.name), members)

    def __rshift__(self, other: Any) -> ComposedPipeline:
        return compose(self, other)

    def __rrshift__(self, other: Any) -> ComposedPipeline:
        return compose(other, self)

    # -- the part protocol (see packflow.parts) -------------------------------------------

    def __packflow_parts__(self) -> tuple[Part, ...]:
        return self._parts

    def __packflow_check__(self, **per_part: Mapping[str, Any]) -> CheckedComposition:
        return self.check(configs=self.resolve_configs(**per_part))

    def __packflow_build__(self, **per_part: Mapping[str, Any]) -> BuiltPipeline:
        return self.build(**per_part)

    # -- per-part settings -------------------------------------------------------------

    def _split(self, given: Mapping[str, Any], what: str) -> dict[str, Any]:
        """``given`` keyed by part name, refusing names that are not parts."""
        names = self.part_names
        for key in given:
            if key not in names:
                match = closest(str(key), names)
                suggestion = f" (did you mean {match!r}?)" if match else ""
                raise ConfigError(
                    f"composition {self.name!r}: {what} names {key!r}, which is not a "
                    f"part{suggestion}; the parts are {', '.join(names)}",
                    field=str(key),
                )
        return dict(given)

    def _check_override_file(self, file: OverrideFile) -> None:
        path = file.origin
        if not path:
            return
        names = self.part_names
        unknown = [key for key in file.part_names() if key not in names]
        if unknown:
            problems = []
            for key in unknown:
                match = closest(key, names)
                suggestion = f" (did you mean {match!r}?)" if match else ""
                problems.append(f"{key!r}{suggestion}")
            raise ConfigError(
                f"config override file {path!r}: for the composition {self.name!r}, "
                '"configs" holds one object per part name; '
                f"{', '.join(problems)} {'is' if len(unknown) == 1 else 'are'} not a part "
                f"(the parts are {', '.join(names)})",
                field=unknown[0],
                path=path,
            )

    def resolve_configs(self, **per_part: Mapping[str, Any]) -> dict[str, BackendConfig]:
        """Each part's config, given overrides by part name (``a={...}``).

        Raises
        ------
        ConfigError
            When a name is not a part, overrides are not a mapping, a part's config is
            invalid, or the override file names something that is not a part.
        """
        overrides = self._split(per_part, "the config overrides")
        file = OverrideFile.read()
        self._check_override_file(file)
        configs: dict[str, BackendConfig] = {}
        for part in self._parts:
            name = part.name
            given = overrides.get(name, {})
            if not isinstance(given, Mapping):
                raise ConfigError(
                    f"composition {self.name!r}: the config overrides of part {name!r} must "
                    f"be a mapping (build({name}={{...}})), got {describe(given)}",
                    field=name,
                )
            try:
                configs[name] = part.resolve_config(given, section=name, file=file)
            except ConfigError as exc:
                # The config model's message does not know which part it belongs to.
                raise ConfigError(
                    f"composition {self.name!r}, part {name!r}: {exc}",
                    field=exc.field,
                    path=exc.path,
                    problems=exc.problems,
                ) from exc
        return configs

    # -- checking ----------------------------------------------------------------------

    def check(self, *, configs: Mapping[str, BackendConfig] | None = None) -> CheckedComposition:
        """Check every part and every seam without running any user code.

        Raises
        ------
        PipelineTypeError, PipelineDefinitionError
            Listing every problem of every part and seam at once; a problem names its
            part (``"b.execute"``) and, at a seam, the upstream function too.
        ConfigError, PreprocessorInitError
            As for each part.
        """
        if configs is None:
            configs = self.resolve_configs()
        checked: list[tuple[str, CheckedPipeline]] = []
        type_problems: list[Any] = []
        definition_problems: list[str] = []
        upstream: Upstream | None = None
        for part in self._parts:
            name = part.name
            part_checked, problems = part.inspect(configs[name], part=name, upstream=upstream)
            definition_problems += [f"part {name!r}: {p}" for p in problems]
            report = part_checked.report
            definition_problems += [f"part {name!r}: {p}" for p in report.unresolved]
            type_problems += report.problems
            checked.append((name, part_checked))
            upstream = _upstream_of(part_checked, name)
        if type_problems:
            raise PipelineTypeError(
                type_problems, self.name, definition_problems=definition_problems
            )
        from packflow.checker import raise_for_problems

        raise_for_problems(None, self.name, definition_problems)
        result = CheckedComposition(name=self.name, parts=tuple(checked))
        logger = get_logger(self.name)
        for note in result.notes:
            logger.info("type check of composition %r: %s", self.name, note)
        return result

    # -- building ----------------------------------------------------------------------

    def build(
        self,
        *,
        resources: Mapping[str, Any] | None = None,
        **per_part: Mapping[str, Any],
    ) -> BuiltPipeline:
        """Resolve each part's config, check everything, then build each part.

        Parameters
        ----------
        resources
            Test doubles named by part: ``{"a.model": fake}``.
        **per_part
            Config overrides by part name: ``build(a={"verbose": True})``.

        Raises
        ------
        ConfigError, PipelineDefinitionError, PipelineTypeError
            As :meth:`check`, before any initializer runs; also for a resource name
            that is not ``"<part>.<resource>"`` of a part with that resource.
        InferenceBackendInitializationError
            When an initializer (or a class part's ``initialize``) raises, or a fake
            does not fit its initializer's return annotation.
        """
        configs = self.resolve_configs(**per_part)
        checked = self.check(configs=configs)
        fakes = self._fakes_by_part(resources or {})
        built: list[tuple[str, BuiltPipeline]] = []
        for part, (name, part_checked) in zip(self._parts, checked.parts, strict=True):
            instance = part.build(
                part_checked, fakes.get(name), part=name, overrides=per_part.get(name, {})
            )
            built.append((name, instance))
        return BuiltPipeline.composed(self.name, built, checked=checked)

    def _fakes_by_part(self, resources: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        names = self.part_names
        by_part: dict[str, dict[str, Any]] = {}
        for key, fake in resources.items():
            part, dot, resource = str(key).partition(".")
            if not dot or part not in names:
                qualified = [
                    f"{p.name}.{resource}" for p in self._parts for resource in p.resource_names
                ]
                match = closest(str(key), qualified)
                suggestion = f" (did you mean {match!r}?)" if match else ""
                raise PipelineDefinitionError(
                    f"composition {self.name!r}: build(resources=...) names {key!r}; in a "
                    f"composition a resource is named by part, as '<part>.<resource>'"
                    f"{suggestion}; resources: {', '.join(qualified) or 'none'}"
                )
            refused = self._parts[names.index(part)].fakes_refused
            if refused is not None:
                raise PipelineDefinitionError(
                    f"composition {self.name!r}: build(resources=...) names {key!r}, but "
                    f"part {part!r} cannot have its resources faked: {refused}"
                )
            by_part.setdefault(part, {})[resource] = fake
        return by_part

    # -- copies ------------------------------------------------------------------------

    def replace(self, **changes: Any) -> ComposedPipeline:
        """A copy with parts or stages swapped; the original is untouched.

        A key that is a part name swaps that part (``replace(b=other_pipeline)``); a key
        ``"<part>.<stage kind>"`` swaps or removes (``None``) a stage of that part,
        as :meth:`Pipeline.replace` does (``replace(**{"a.execute": fake})``).

        Raises
        ------
        PipelineDefinitionError
            When a key names no part, or a stage of a class part.
        """
        parts: list[Any] = list(self.parts)
        names = self.part_names
        stage_changes: dict[str, dict[str, Any]] = {}
        for key, value in changes.items():
            part, dot, kind = key.partition(".")
            if part not in names:
                match = closest(part, names)
                suggestion = f" (did you mean {match!r}?)" if match else ""
                raise PipelineDefinitionError(
                    f"composition {self.name!r}: replace() names {key!r}, but there is no "
                    f"part {part!r}{suggestion}; the parts are {', '.join(names)}"
                )
            if dot:
                stage_changes.setdefault(part, {})[kind] = value
            else:
                parts[names.index(part)] = value
        for part, stages in stage_changes.items():
            index = names.index(part)
            current = as_parts(parts[index])
            if len(current) != 1:
                raise PipelineDefinitionError(
                    f"composition {self.name!r}: part {part!r} was replaced by a composition; "
                    "replace its stages before composing it"
                )
            try:
                parts[index] = current[0].replace(**stages)
            except PipelineDefinitionError as exc:
                raise PipelineDefinitionError(f"composition {self.name!r}: {exc}") from exc
        copy = ComposedPipeline(parts, name=self.name if self._custom_name() else None)
        copy._origins = caller_modules()
        return copy

    def _custom_name(self) -> bool:
        return self.name != " >> ".join(self.part_names)


def _upstream_of(checked: CheckedPipeline, name: str) -> Upstream | None:
    stages = checked.graph.stages
    if not stages:
        return None
    last = stages[-1]
    returned = checked.report.return_types.get(last.kind.value, Any)
    if attrs_record_type(returned) is not None:
        returned = Records  # attrs outputs become dicts before they leave the part
    return returned, last, name


def _rebuild_composed(parts: tuple[Any, ...], name: str) -> ComposedPipeline:
    return ComposedPipeline(parts, name=name)
