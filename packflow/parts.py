"""Parts: the one protocol every front end speaks, and what turns a definition into a runtime.

A *definition* is whatever a user hands packflow to run: a ``Pipeline``, a composition
(``a >> b``), an ``InferenceBackend`` subclass or instance, or an instance already built.
Three questions are asked of one, and each is answered here, once, through a hook the
front end defines on its type (the ``os.fspath`` / ``__fspath__`` pattern), so that
this module imports no front end and no other module asks "what kind of thing is this":

- :func:`as_parts` (hook ``__packflow_parts__``): the :class:`Part` s it is made of, for
  composition: a pipeline or a backend class is one part, a composition its parts;
- :func:`check_definition` (hook ``__packflow_check__``): its checked graph, running no
  user code;
- :func:`build_definition` (hook ``__packflow_build__``): a ready instance.

A :class:`Part` is what a composition holds: it resolves its config (reading a section
of an override file read once per build), inspects its graph against what arrives from
upstream, and builds from its own checked graph, so a composition resolves and checks
each part exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from packflow._text import describe
from packflow.exceptions import PipelineDefinitionError

if TYPE_CHECKING:
    from packflow.config import BackendConfig, OverrideFile
    from packflow.graph import CheckedComposition, CheckedPipeline, Upstream
    from packflow.runtime.built import BuiltPipeline
    from packflow.runtime.contracts import Instance

__all__ = ["Part", "as_parts", "build_definition", "check_definition", "is_definition"]


class Part(Protocol):
    """One part of a composition: a pipeline, or a class backend's methods."""

    @property
    def name(self) -> str:
        """The part's name: configs, resources and metrics are named by it."""
        ...

    @property
    def definition(self) -> Any:
        """What the user composed: the ``Pipeline``, or the backend class."""
        ...

    @property
    def resource_names(self) -> tuple[str, ...]:
        """The resources its initializers provide (what ``build(resources=...)`` fakes)."""
        ...

    @property
    def fakes_refused(self) -> str | None:
        """Why its resources cannot be faked, or ``None`` when they can."""
        ...

    def resolve_config(
        self,
        overrides: Mapping[str, Any],
        *,
        section: str | None = None,
        file: OverrideFile | None = None,
    ) -> BackendConfig:
        """Its config given ``overrides``, from ``configs[section]`` of the override file."""
        ...

    def inspect(
        self, config: BackendConfig, *, part: str | None = None, upstream: Upstream | None = None
    ) -> tuple[CheckedPipeline, list[str]]:
        """Check without raising: the checked pipeline and its definition problems.

        ``upstream`` is what the previous part's last stage returns; ``part`` labels the
        problems (``"b.execute"``). A result with problems must not be built.
        """
        ...

    def build(
        self,
        checked: CheckedPipeline,
        resources: Mapping[str, Any] | None = None,
        *,
        part: str | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> BuiltPipeline:
        """A ready instance of the part, from its own ``checked`` graph (not checked again).

        ``overrides`` are the config values given in code, for a part that remembers them
        (a class backend's instance does).
        """
        ...

    def replace(self, **stages: Any) -> Any:
        """A copy of the definition with stages swapped (``Pipeline.replace``).

        Raises
        ------
        PipelineDefinitionError
            When the part's stages cannot be swapped one by one.
        """
        ...


def as_parts(definition: Any) -> tuple[Part, ...]:
    """The parts ``definition`` is made of, in the order they run.

    Raises
    ------
    PipelineDefinitionError
        When it cannot be a part of a composition (saying what can).
    """
    hook = getattr(type(definition), "__packflow_parts__", None)
    if hook is None:
        raise PipelineDefinitionError(
            f"cannot compose {describe(definition)}: the parts of `a >> b` are Pipelines, "
            "composed pipelines or InferenceBackend subclasses"
        )
    parts: tuple[Part, ...] = hook(definition)
    return parts


def check_definition(definition: Any, **config: Any) -> CheckedPipeline | CheckedComposition:
    """Type-check ``definition`` with ``config`` over its own, running no user code.

    An instance that is already built was checked when it was built: its check is
    returned (built again with ``config`` first, when config is given).

    Raises
    ------
    TypeError
        When ``definition`` is not something packflow can run.
    ConfigError, PipelineDefinitionError, PipelineTypeError
        As ``Pipeline.check``.
    """
    hook = getattr(type(definition), "__packflow_check__", None)
    if hook is None:
        raise TypeError(_not_runnable(definition))
    checked: CheckedPipeline | CheckedComposition = hook(definition, **config)
    return checked


def build_definition(definition: Any, **config: Any) -> Instance:
    """A ready instance of ``definition``, with ``config`` over its own.

    A pipeline or composition is built (``build(**config)``), a backend class
    constructed, a backend instance returned as it is (or made again with ``config``
    over the config it was made with), a built instance returned as it is.

    Raises
    ------
    TypeError
        When ``definition`` is not something packflow can run, or a backend class has no
        ``execute``.
    InferenceBackendLoadError
        When ``config`` is given for an instance built from a pipeline, which cannot be
        rebuilt.
    ConfigError, PipelineDefinitionError, PipelineTypeError, InferenceBackendInitializationError
        As building it.
    """
    hook = getattr(type(definition), "__packflow_build__", None)
    if hook is None:
        raise TypeError(_not_runnable(definition))
    instance: Instance = hook(definition, **config)
    return instance


def is_definition(value: Any) -> bool:
    """Whether packflow can run ``value`` (see :func:`build_definition`)."""
    return getattr(type(value), "__packflow_build__", None) is not None


def _not_runnable(value: Any) -> str:
    return (
        f"{describe(value)} is not a pipeline: expected a Pipeline, a composed pipeline, an "
        "InferenceBackend subclass or instance, or a built pipeline"
    )
