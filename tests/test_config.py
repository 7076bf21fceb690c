"""Config resolution: defaults < keyword overrides < the JSON override file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packflow.config import (
    BackendConfig,
    InputFormat,
    applied_layers,
    command_line_layers,
    parse_setting,
    resolve_config,
)
from packflow.exceptions import ConfigError

NO_FILE: dict[str, str] = {}


def write_override_file(tmp_path: Path, document: Any) -> dict[str, str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return {"BACKEND_CONFIG_FILE_PATH": str(path)}


@attrs.frozen(kw_only=True)
class ModelSettings:
    path: str
    layers: int = 3


@attrs.frozen(kw_only=True)
class ScorerConfig(BackendConfig):
    model_path: str
    threshold: float = 0.5
    weights: dict[str, float] = attrs.field(factory=lambda: {"a": 1.0, "b": 2.0})
    model: ModelSettings = ModelSettings(path="default.bin")
    retries: int = attrs.field(default=1, validator=attrs.validators.ge(0))


def test_defaults_are_used_when_nothing_is_given() -> None:
    config = resolve_config(BackendConfig, {}, environ=NO_FILE)
    assert config == BackendConfig()
    assert config.input_format is InputFormat.RECORDS
    assert config.nested_field_delimiter == "."
    assert config.numpy_dtype is None


def test_overrides_replace_defaults() -> None:
    config = resolve_config(
        BackendConfig, {"feature_names": ["a", "b"], "verbose": True}, environ=NO_FILE
    )
    assert config.feature_names == ["a", "b"]
    assert config.verbose is True


@pytest.mark.parametrize("value", ["numpy", InputFormat.NUMPY])
def test_input_format_accepts_the_enum_or_its_string(value: Any) -> None:
    config = resolve_config(BackendConfig, {"input_format": value}, environ=NO_FILE)
    assert config.input_format is InputFormat.NUMPY


def test_backend_config_constructor_accepts_the_input_format_string() -> None:
    assert BackendConfig(input_format="passthrough").input_format is InputFormat.PASSTHROUGH  # type: ignore[arg-type]


def test_override_file_wins_over_keyword_overrides(tmp_path: Path) -> None:
    environ = write_override_file(tmp_path, {"configs": {"verbose": False}})
    config = resolve_config(BackendConfig, {"verbose": True}, environ=environ)
    assert config.verbose is False


def test_override_file_merges_dicts_key_by_key(tmp_path: Path) -> None:
    environ = write_override_file(tmp_path, {"configs": {"rename_fields": {"b": "B"}}})
    config = resolve_config(BackendConfig, {"rename_fields": {"a": "A"}}, environ=environ)
    assert config.rename_fields == {"a": "A", "b": "B"}


def test_override_file_replaces_lists(tmp_path: Path) -> None:
    environ = write_override_file(tmp_path, {"configs": {"feature_names": ["z"]}})
    config = resolve_config(BackendConfig, {"feature_names": ["a", "b"]}, environ=environ)
    assert config.feature_names == ["z"]


def test_override_file_merges_into_dict_and_attrs_defaults(tmp_path: Path) -> None:
    environ = write_override_file(
        tmp_path, {"configs": {"weights": {"a": 9.0}, "model": {"layers": 5}}}
    )
    config = resolve_config(ScorerConfig, {"model_path": "m.bin"}, environ=environ)
    assert config.weights == {"a": 9.0, "b": 2.0}
    assert config.model == ModelSettings(path="default.bin", layers=5)


def test_override_file_merges_into_an_attrs_instance_given_in_code(tmp_path: Path) -> None:
    environ = write_override_file(tmp_path, {"configs": {"model": {"layers": 7}}})
    config = resolve_config(
        ScorerConfig,
        {"model_path": "m.bin", "model": ModelSettings(path="given.bin")},
        environ=environ,
    )
    assert config.model == ModelSettings(path="given.bin", layers=7)


def test_environ_defaults_to_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environ = write_override_file(tmp_path, {"configs": {"feature_names": ["from_env"]}})
    monkeypatch.setenv("BACKEND_CONFIG_FILE_PATH", environ["BACKEND_CONFIG_FILE_PATH"])
    assert resolve_config(BackendConfig, {}).feature_names == ["from_env"]


def test_an_empty_file_variable_means_no_override_file() -> None:
    config = resolve_config(BackendConfig, {}, environ={"BACKEND_CONFIG_FILE_PATH": ""})
    assert config == BackendConfig()


def test_custom_config_subclass_gets_its_own_and_the_base_fields() -> None:
    config = resolve_config(
        ScorerConfig, {"model_path": "m.bin", "input_format": "numpy"}, environ=NO_FILE
    )
    assert isinstance(config, ScorerConfig)
    assert config.model_path == "m.bin"
    assert config.input_format is InputFormat.NUMPY


def test_an_int_is_accepted_for_a_float_field() -> None:
    config = resolve_config(ScorerConfig, {"model_path": "m", "threshold": 1}, environ=NO_FILE)
    assert config.threshold == 1.0
    assert isinstance(config.threshold, float)


def test_overrides_are_not_mutated(tmp_path: Path) -> None:
    overrides = {"rename_fields": {"a": "A"}}
    environ = write_override_file(tmp_path, {"configs": {"rename_fields": {"b": "B"}}})
    resolve_config(BackendConfig, overrides, environ=environ)
    assert overrides == {"rename_fields": {"a": "A"}}


# --- errors ---------------------------------------------------------------------------


def test_unknown_key_is_reported_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="did you mean 'feature_names'") as caught:
        resolve_config(BackendConfig, {"featur_names": ["a"]}, environ=NO_FILE)
    assert caught.value.field == "featur_names"


def test_unknown_key_in_the_override_file_names_the_file(tmp_path: Path) -> None:
    environ = write_override_file(tmp_path, {"configs": {"verbos": True}})
    with pytest.raises(ConfigError, match="did you mean 'verbose'") as caught:
        resolve_config(BackendConfig, {}, environ=environ)
    assert caught.value.path == environ["BACKEND_CONFIG_FILE_PATH"]
    assert environ["BACKEND_CONFIG_FILE_PATH"] in str(caught.value)


def test_every_wrongly_typed_field_is_reported() -> None:
    overrides = {
        "verbose": "yes",
        "feature_names": ["a", 2],
        "rename_fields": ["a"],
        "nested_field_delimiter": 3,
        "input_format": "nump",
    }
    with pytest.raises(ConfigError) as caught:
        resolve_config(BackendConfig, overrides, environ=NO_FILE)
    problems = caught.value.problems
    assert len(problems) == 5
    assert any(p.startswith("verbose: expected bool, got str 'yes'") for p in problems)
    assert any(p.startswith("feature_names[1]: expected str, got int 2") for p in problems)
    assert any(p.startswith("rename_fields: expected a mapping") for p in problems)
    assert any(p.startswith("nested_field_delimiter: expected str") for p in problems)
    assert any("did you mean 'numpy'" in p for p in problems)


def test_unknown_keys_and_wrong_types_are_reported_together() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_config(BackendConfig, {"bogus": 1, "verbose": 0}, environ=NO_FILE)
    assert len(caught.value.problems) == 2


def test_a_string_is_not_coerced_to_a_bool() -> None:
    with pytest.raises(ConfigError, match="verbose: expected bool"):
        resolve_config(BackendConfig, {"verbose": "false"}, environ=NO_FILE)


def test_a_string_is_not_split_into_a_list_of_feature_names() -> None:
    with pytest.raises(ConfigError, match="feature_names: expected a list"):
        resolve_config(BackendConfig, {"feature_names": "abc"}, environ=NO_FILE)


def test_a_bool_is_not_accepted_for_a_float_field() -> None:
    with pytest.raises(ConfigError, match="threshold: expected float, got bool"):
        resolve_config(ScorerConfig, {"model_path": "m", "threshold": True}, environ=NO_FILE)


def test_missing_required_field_of_a_custom_config_is_reported() -> None:
    with pytest.raises(ConfigError, match="model_path: missing required field") as caught:
        resolve_config(ScorerConfig, {}, environ=NO_FILE)
    assert caught.value.field == "model_path"


def test_a_required_field_may_come_from_the_override_file_alone(tmp_path: Path) -> None:
    environ = write_override_file(tmp_path, {"configs": {"model_path": "from-file.bin"}})
    config = resolve_config(ScorerConfig, {}, environ=environ)
    assert config.model_path == "from-file.bin"


def test_a_nested_config_that_is_not_an_object_says_an_object_was_expected(
    tmp_path: Path,
) -> None:
    environ = write_override_file(tmp_path, {"configs": {"model_path": "m", "model": 5}})
    with pytest.raises(ConfigError) as caught:
        resolve_config(ScorerConfig, {}, environ=environ)
    assert caught.value.field == "model"
    assert "model: expected a mapping (JSON object) for ModelSettings, got int 5" in str(
        caught.value
    )


def test_nested_field_problems_name_the_full_path() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_config(
            ScorerConfig,
            {"model_path": "m", "model": {"layers": "2", "pth": "x"}},
            environ=NO_FILE,
        )
    text = str(caught.value)
    assert "model.path: missing required field" in text
    assert "model.layers: expected int, got str '2'" in text
    assert "model.pth: unknown key for ModelSettings; did you mean 'path'?" in text


def test_a_failing_attrs_validator_names_the_field() -> None:
    with pytest.raises(ConfigError, match="retries") as caught:
        resolve_config(ScorerConfig, {"model_path": "m", "retries": -1}, environ=NO_FILE)
    assert caught.value.field == "retries"


def test_wrong_type_from_the_file_names_the_file(tmp_path: Path) -> None:
    environ = write_override_file(tmp_path, {"configs": {"flatten_lists": "yes"}})
    with pytest.raises(ConfigError, match="flatten_lists: expected bool") as caught:
        resolve_config(BackendConfig, {}, environ=environ)
    assert environ["BACKEND_CONFIG_FILE_PATH"] in caught.value.problems[0]


def test_missing_override_file_is_an_error(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.json")
    with pytest.raises(ConfigError, match="does not exist") as caught:
        resolve_config(BackendConfig, {}, environ={"BACKEND_CONFIG_FILE_PATH": path})
    assert caught.value.path == path


def test_override_file_that_is_a_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        resolve_config(BackendConfig, {}, environ={"BACKEND_CONFIG_FILE_PATH": str(tmp_path)})


def test_override_file_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b'{"configs": {"\xff": 1}}')
    with pytest.raises(ConfigError, match="not UTF-8"):
        resolve_config(BackendConfig, {}, environ={"BACKEND_CONFIG_FILE_PATH": str(path)})


def test_an_empty_override_file_is_reported_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="is empty") as caught:
        resolve_config(BackendConfig, {}, environ={"BACKEND_CONFIG_FILE_PATH": str(path)})
    assert caught.value.path == str(path)


def test_a_key_given_twice_in_the_override_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"configs": {"verbose": true, "verbose": false}}', encoding="utf-8")
    with pytest.raises(ConfigError, match="key 'verbose' twice") as caught:
        resolve_config(BackendConfig, {}, environ={"BACKEND_CONFIG_FILE_PATH": str(path)})
    assert (caught.value.field, caught.value.path) == ("verbose", str(path))


def test_an_override_file_starting_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('\ufeff{"configs": {"verbose": true}}', encoding="utf-8")
    config = resolve_config(BackendConfig, {}, environ={"BACKEND_CONFIG_FILE_PATH": str(path)})
    assert config.verbose is True


def test_an_override_file_at_a_unicode_path_is_read_and_named(tmp_path: Path) -> None:
    path = tmp_path / "réglages é" / "cônfig.json"
    path.parent.mkdir()
    path.write_text('{"configs": {"verbos": true}}', encoding="utf-8")
    with pytest.raises(ConfigError, match="did you mean 'verbose'") as caught:
        resolve_config(BackendConfig, {}, environ={"BACKEND_CONFIG_FILE_PATH": str(path)})
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value)


def test_invalid_json_is_reported_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"configs": {"verbose": true,}}', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"not valid JSON: .* at line 1 column 30"):
        resolve_config(BackendConfig, {}, environ={"BACKEND_CONFIG_FILE_PATH": str(path)})


def test_file_without_configs_object_is_an_error(tmp_path: Path) -> None:
    environ = write_override_file(tmp_path, {"verbose": True})
    with pytest.raises(ConfigError, match=r"no \"configs\" object .*'verbose'"):
        resolve_config(BackendConfig, {}, environ=environ)


def test_configs_that_is_not_an_object_is_an_error(tmp_path: Path) -> None:
    environ = write_override_file(tmp_path, {"configs": ["verbose"]})
    with pytest.raises(ConfigError, match='"configs" must be a JSON object, found an array'):
        resolve_config(BackendConfig, {}, environ=environ)


def test_file_whose_top_level_is_not_an_object_is_an_error(tmp_path: Path) -> None:
    environ = write_override_file(tmp_path, [1, 2])
    with pytest.raises(ConfigError, match="found an array"):
        resolve_config(BackendConfig, {}, environ=environ)


def test_a_model_that_is_not_an_attrs_class_is_an_error() -> None:
    with pytest.raises(ConfigError, match="not an attrs class"):
        resolve_config(dict, {}, environ=NO_FILE)  # type: ignore[type-var]


# --- properties ------------------------------------------------------------------------

names = st.text(min_size=1, max_size=8)


@settings(max_examples=50, deadline=None)
@given(
    verbose=st.booleans(),
    rename=st.dictionaries(names, names, max_size=4),
    features=st.lists(names, max_size=4),
    delimiter=names,
    input_format=st.sampled_from([f.value for f in InputFormat]),
)
def test_valid_values_resolve_unchanged(
    verbose: bool, rename: dict[str, str], features: list[str], delimiter: str, input_format: str
) -> None:
    overrides = {
        "verbose": verbose,
        "rename_fields": rename,
        "feature_names": features,
        "nested_field_delimiter": delimiter,
        "input_format": input_format,
    }
    config = resolve_config(BackendConfig, overrides, environ=NO_FILE)
    assert attrs.asdict(config) == {**attrs.asdict(BackendConfig()), **overrides}


@settings(max_examples=50, deadline=None)
@given(
    in_code=st.dictionaries(names, names, max_size=4),
    in_file=st.dictionaries(names, names, max_size=4),
)
def test_file_rename_fields_merge_over_those_given_in_code(
    tmp_path_factory: pytest.TempPathFactory, in_code: dict[str, str], in_file: dict[str, str]
) -> None:
    environ = write_override_file(
        tmp_path_factory.mktemp("cfg"), {"configs": {"rename_fields": in_file}}
    )
    config = resolve_config(BackendConfig, {"rename_fields": in_code}, environ=environ)
    assert config.rename_fields == {**in_code, **in_file}


def test_top_level_keys_beside_configs_are_named_in_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    environ = write_override_file(tmp_path, {"verbose": True, "configs": {}})
    with caplog.at_level("WARNING", logger="packflow"):
        config = resolve_config(BackendConfig, {}, environ=environ)
    assert config.verbose is False
    assert "'verbose'" in caplog.text
    assert "ignored" in caplog.text


# -- config layers from the command line (--config FILE, --set key=value) --------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
KEYS = st.lists(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True), min_size=1, max_size=3)


@given(KEYS, JSON_VALUES)
def test_a_setting_s_json_value_survives_at_its_dotted_key(keys: list[str], value: Any) -> None:
    expected: Any = value
    for key in reversed(keys):
        expected = {key: expected}
    assert parse_setting(f"{'.'.join(keys)}={json.dumps(value)}") == expected


@given(st.text().filter(lambda text: not _is_json(text)))
def test_a_setting_that_is_not_json_is_text(text: str) -> None:
    assert parse_setting(f"key={text}") == {"key": text}


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("setting", ["verbose", "=true", "a..b=1", ".a=1", " =1"])
def test_a_malformed_setting_is_a_config_error(setting: str) -> None:
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_setting(setting)


def test_layers_go_over_the_override_file_and_later_settings_win(tmp_path: Path) -> None:
    env_file = tmp_path / "env.json"
    env_file.write_text(json.dumps({"configs": {"feature_names": ["a"], "verbose": True}}))
    cli_file = tmp_path / "cli.json"
    cli_file.write_text(json.dumps({"configs": {"rename_fields": {"x": "y"}}}))
    layers = command_line_layers(
        str(cli_file), ["rename_fields.p=q", 'feature_names=["b"]', 'feature_names=["c"]']
    )
    with applied_layers(layers):
        config = resolve_config(
            BackendConfig,
            {"verbose": False},
            environ={"BACKEND_CONFIG_FILE_PATH": str(env_file)},
        )
    assert config.verbose is True
    assert config.rename_fields == {"x": "y", "p": "q"}
    assert config.feature_names == ["c"]
    # Outside the block, nothing of the layers is left.
    assert resolve_config(BackendConfig, {}, environ={}).rename_fields == {}


def test_a_bad_value_from_a_layer_names_the_layer_and_not_the_environment_s_file(
    tmp_path: Path,
) -> None:
    env_file = tmp_path / "env.json"
    env_file.write_text(json.dumps({"configs": {"verbose": True}}))
    with (
        applied_layers(command_line_layers(settings=["feature_names=3"])),
        pytest.raises(ConfigError) as info,
    ):
        resolve_config(BackendConfig, {}, environ={"BACKEND_CONFIG_FILE_PATH": str(env_file)})
    assert "(from --set)" in str(info.value)
    assert info.value.field == "feature_names"


def test_layers_are_plain_picklable_values(tmp_path: Path) -> None:
    import pickle

    layers = command_line_layers(settings=["verbose=true"])
    assert pickle.loads(pickle.dumps(layers)) == layers
