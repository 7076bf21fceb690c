"""packflow.shipping: by reference where a pipeline is bound, by value through one hook."""

from __future__ import annotations

import pickle
import sys
import threading
import types
from typing import Any

import pytest

from packflow import InferenceBackend, Pipeline, Records, shipping
from packflow.exceptions import UnpicklablePipelineError


def cloudpickle() -> Any:
    import ray.cloudpickle

    return ray.cloudpickle


def roundtrip(obj: Any) -> Any:
    """``obj`` shipped as a worker receives it, and back."""
    shipped, _ = pickle.loads(shipping.ship(obj, {}, cloudpickle()))
    return shipped


def make_pipeline(name: str = "made") -> Pipeline:
    pipe = Pipeline(name)

    @pipe.execute
    def tag(records: Records) -> Records:
        return [{**r, "tag": name} for r in records]

    return pipe


def test_a_pipeline_bound_nowhere_pickles_by_value_through_its_hook() -> None:
    pipe = make_pipeline()

    rebuild, args = pipe.__reduce__()

    assert (rebuild, args) == pipe.__packflow_by_value__().reduced()
    assert "stage execute" in pipe.__packflow_by_value__().members
    assert roundtrip(pipe).build()({"x": 1}) == {"x": 1, "tag": "made"}


def test_a_pipeline_bound_in_a_module_pickles_by_reference() -> None:
    module = types.ModuleType("shipping_fixture_module")
    sys.modules[module.__name__] = module
    try:
        module.pipe = make_pipeline()  # type: ignore[attr-defined]

        reduced = shipping.reduce(module.pipe, [module.__name__])  # type: ignore[attr-defined]

        assert reduced == (shipping.import_definition, (module.__name__, "pipe"))
        assert shipping.import_definition(module.__name__, "pipe") is module.pipe  # type: ignore[attr-defined]
    finally:
        del sys.modules[module.__name__]


def test_import_definition_refuses_an_attribute_that_is_not_a_pipeline() -> None:
    with pytest.raises(pickle.UnpicklingError, match=r"os\.sep is str, not a pipeline"):
        shipping.import_definition("os", "sep")


def test_a_composition_names_its_parts_as_members() -> None:
    composed = make_pipeline("a") >> make_pipeline("b")

    form = composed.__packflow_by_value__()

    assert list(form.members) == ["a", "b"]
    copy = roundtrip(composed)
    assert copy.build()({"x": 1}) == {"x": 1, "tag": "b"}


class Scaled(InferenceBackend):
    def execute(self, inputs: Records) -> Records:
        return inputs


def test_a_class_backend_instance_ships_as_its_class_and_config() -> None:
    backend = Scaled(verbose=True)

    form = backend.__packflow_by_value__()

    assert form.args == (Scaled, {"verbose": True})
    assert pickle.loads(pickle.dumps(backend)).config.verbose is True


def test_what_cannot_be_pickled_is_named_by_stage_and_closure_variable() -> None:
    lock = threading.Lock()
    pipe = Pipeline("locked")

    @pipe.execute
    def guarded(records: Records) -> Records:
        with lock:
            return records

    with pytest.raises(UnpicklablePipelineError) as caught:
        shipping.ship(pipe, {}, cloudpickle())

    (problem,) = caught.value.problems
    assert problem.startswith("stage execute `")
    assert "guarded" in problem and "closure variable `lock`" in problem


def test_a_config_value_that_cannot_be_pickled_is_named() -> None:
    pipe = make_pipeline()

    with pytest.raises(UnpicklablePipelineError, match="config override 'lock'"):
        shipping.ship(pipe, {"lock": threading.Lock()}, cloudpickle())


def test_main_is_never_importable_by_a_worker() -> None:
    assert not shipping.importable("__main__")
    assert shipping.importable("json")


def test_the_old_pickling_module_reexports_shipping() -> None:
    from packflow import pickling

    assert pickling.find_binding is shipping.find_binding
    assert pickling.caller_modules is shipping.caller_modules
