"""Projects: packflow.yaml, scaffolding, validation and export."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packflow.exceptions import ConfigError
from packflow.project import (
    ProjectConfig,
    ProjectError,
    RuntimeSettings,
    check_project_name,
    create_project,
    dump_project_config,
    export_project,
    list_project_files,
    read_project_config,
    validate_project,
)

NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,20}", fullmatch=True)
TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\ufeff"),
    max_size=30,
)


@pytest.fixture(autouse=True)
def _forget_project_modules(tmp_path: Path) -> Iterator[None]:
    """Unload modules imported from this test's folder so the next test starts clean."""
    saved_path = list(sys.path)
    yield
    sys.path[:] = saved_path
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "") or "").startswith(str(tmp_path)):
            del sys.modules[name]


def write_yaml(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "packflow.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return folder


# --------------------------------------------------------------------------- names


@given(NAMES)
@settings(max_examples=50)
def test_names_of_letters_digits_hyphens_and_underscores_are_accepted(name: str) -> None:
    assert check_project_name(name) == name


@pytest.mark.parametrize("name", ["", "1model", "-x", "_x", "my model", "x.y", "x/y", "ü"])
def test_names_that_do_not_start_with_a_letter_or_hold_other_characters_are_refused(
    name: str,
) -> None:
    with pytest.raises(ProjectError, match="starts with a letter"):
        check_project_name(name)


# --------------------------------------------------------------------------- packflow.yaml


@given(
    name=NAMES,
    version=st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,2}", fullmatch=True),
    description=TEXT,
    maintainers=st.lists(TEXT, max_size=3),
    custom=st.dictionaries(
        st.from_regex(r"x_[a-z]{1,8}", fullmatch=True),
        st.one_of(st.integers(), TEXT, st.lists(st.integers(), max_size=3)),
        max_size=3,
    ),
    env=st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True), TEXT, max_size=3),
    extra=st.dictionaries(
        TEXT, st.one_of(st.integers(), TEXT, st.lists(TEXT, max_size=2)), max_size=3
    ),
)
@settings(max_examples=40, deadline=None)
def test_a_dumped_project_config_reads_back_equal(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    version: str,
    description: str,
    maintainers: list[str],
    custom: dict[str, object],
    env: dict[str, str],
    extra: dict[str, object],
) -> None:
    config = ProjectConfig(
        name=name,
        version=version,
        description=description,
        maintainers=maintainers,
        runtime=RuntimeSettings(python_version="3.11"),
        backend_config={"feature_names": ["a", "b"]},
        env=env,
        extra=extra,
        custom=custom,
    )
    folder = tmp_path_factory.mktemp("project")
    (folder / "packflow.yaml").write_text(dump_project_config(config), encoding="utf-8")
    assert read_project_config(folder) == config


def test_unknown_keys_are_kept_as_custom_metadata(tmp_path: Path) -> None:
    write_yaml(
        tmp_path,
        """
        name: scorer
        inference_backend: inference:pipe
        team: fraud
        deploy: {replicas: 3}
        """,
    )
    config = read_project_config(tmp_path)
    assert config.custom == {"team": "fraud", "deploy": {"replicas": 3}}
    assert "team: fraud" in dump_project_config(config)


# --------------------------------------------------------------------------- 0.4.1 sections


def test_env_and_extra_sections_are_read(tmp_path: Path) -> None:
    write_yaml(
        tmp_path,
        """
        name: scorer
        inference_backend: inference:pipe
        env:
          MODEL_DIR: /models
          THREADS: "4"
        extra:
          owner: {team: fraud}
          tags: [a, b]
        """,
    )
    config = read_project_config(tmp_path)
    assert config.env == {"MODEL_DIR": "/models", "THREADS": "4"}
    assert config.extra == {"owner": {"team": "fraud"}, "tags": ["a", "b"]}
    assert config.custom == {}


def test_an_env_value_yaml_reads_as_a_number_asks_to_be_quoted_without_quoting_it(
    tmp_path: Path,
) -> None:
    write_yaml(tmp_path, "name: x\ninference_backend: a:b\nenv:\n  PIN: 987654\n")
    with pytest.raises(ConfigError, match=r'`env\.PIN` must be a string.*quote it: PIN: "..."'):
        read_project_config(tmp_path)
    with pytest.raises(ConfigError) as info:
        read_project_config(tmp_path)
    assert "987654" not in str(info.value)
    assert info.value.field == "env.PIN"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("env: [A, B]", "`env` must be a mapping"),
        ("env:\n  1BAD: x", "'1BAD' is not an environment variable name"),
        ("env:\n  EMPTY:", 'write EMPTY: "" for an empty value'),
        ("extra: just text", "`extra` must be a mapping"),
    ],
)
def test_malformed_env_and_extra_sections_are_config_errors(
    tmp_path: Path, section: str, message: str
) -> None:
    write_yaml(tmp_path, f"name: x\ninference_backend: a:b\n{section}\n")
    with pytest.raises(ConfigError, match=message):
        read_project_config(tmp_path)


def test_env_is_set_before_the_backend_module_is_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from packflow.loaders import InferenceBackendLoader

    monkeypatch.delenv("PACKFLOW_TEST_GREETING", raising=False)
    write_yaml(
        tmp_path,
        """
        name: greeter
        inference_backend: inference:pipe
        env:
          PACKFLOW_TEST_GREETING: hello
        """,
    )
    (tmp_path / "inference.py").write_text(
        textwrap.dedent(
            """
            import os
            from packflow import Pipeline

            GREETING = os.environ["PACKFLOW_TEST_GREETING"]
            pipe = Pipeline("greeter")

            @pipe.execute
            def greet(records):
                return [{"greeting": GREETING} for _ in records]
            """
        )
    )
    backend = InferenceBackendLoader.from_project(tmp_path)
    assert backend({"x": 1}) == {"greeting": "hello"}


def test_env_overwriting_a_different_value_warns_naming_the_variable_not_the_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from packflow.projects.manifest import apply_project_env

    monkeypatch.setenv("PACKFLOW_TEST_TOKEN", "old-secret")
    monkeypatch.setenv("PACKFLOW_TEST_SAME", "same")
    with caplog.at_level("WARNING", logger="packflow"):
        apply_project_env(
            {"PACKFLOW_TEST_TOKEN": "new-secret", "PACKFLOW_TEST_SAME": "same"},
            tmp_path / "packflow.yaml",
        )
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'packflow.yaml'}: env: PACKFLOW_TEST_TOKEN overwrites the value "
        "already set in the environment"
    ]
    assert "secret" not in caplog.text
    import os

    assert os.environ["PACKFLOW_TEST_TOKEN"] == "new-secret"


# --------------------------------------------------------------------------- duplicate keys


@pytest.mark.parametrize(
    ("text", "key", "lines"),
    [
        (
            "name: a\nruntime:\n  inference_backend: m:p\nversion: 1.0.0\nruntime:\n"
            "  loader: local\n",
            "runtime",
            (2, 5),
        ),
        ("name: a\ninference_backend: m:p\nname: b\n", "name", (1, 3)),
        (
            "name: a\nruntime:\n  inference_backend: m:p\n  inference_backend: m:q\n",
            "inference_backend",
            (3, 4),
        ),
    ],
)
def test_a_key_given_twice_in_packflow_yaml_is_refused_naming_it_and_both_lines(
    tmp_path: Path, text: str, key: str, lines: tuple[int, int]
) -> None:
    write_yaml(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        read_project_config(tmp_path)
    message = str(info.value)
    assert f"`{key}` is given twice" in message
    assert f"lines {lines[0]} and {lines[1]}" in message
    assert str(tmp_path / "packflow.yaml") in message
    assert info.value.field == key


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    write_yaml(
        tmp_path,
        """
        name: a
        inference_backend: m:p
        extra:
          base: &base {x: 1}
          one:
            <<: *base
            y: 2
        """,
    )
    assert read_project_config(tmp_path).extra["one"] == {"x": 1, "y": 2}


def test_runtime_keys_at_the_top_level_are_read_as_in_the_original_layout(
    tmp_path: Path,
) -> None:
    write_yaml(
        tmp_path,
        """
        name: scorer
        inference_backend: main:app
        loader: module
        python_version: "3.10"
        """,
    )
    runtime = read_project_config(tmp_path).runtime
    assert runtime == RuntimeSettings(
        inference_backend="main:app", loader="module", python_version="3.10"
    )


def test_a_missing_name_is_a_config_error_naming_the_field(tmp_path: Path) -> None:
    write_yaml(tmp_path, "version: 1.0.0\n")
    with pytest.raises(ConfigError, match="`name` is missing") as info:
        read_project_config(tmp_path)
    assert info.value.field == "name"


def test_a_missing_inference_backend_is_a_config_error_not_a_guess(tmp_path: Path) -> None:
    write_yaml(tmp_path, "name: x\nversion: 1.0.0\n")
    with pytest.raises(ConfigError, match=r"`runtime\.inference_backend` is missing") as info:
        read_project_config(tmp_path)
    assert info.value.field == "runtime.inference_backend"


def test_invalid_yaml_is_reported_with_its_line(tmp_path: Path) -> None:
    write_yaml(tmp_path, "name: x\nruntime: [unclosed\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        read_project_config(tmp_path)


def test_a_version_yaml_reads_as_a_number_asks_to_be_quoted(tmp_path: Path) -> None:
    write_yaml(tmp_path, "name: x\nversion: 1.10\n")
    with pytest.raises(ConfigError, match=r'quote it: version: "1.1"'):
        read_project_config(tmp_path)


def test_a_python_version_yaml_reads_as_a_number_asks_to_be_quoted(tmp_path: Path) -> None:
    write_yaml(tmp_path, "name: x\nruntime:\n  python_version: 3.10\n")
    with pytest.raises(ConfigError, match=r"runtime\.python_version` must be a string"):
        read_project_config(tmp_path)


def test_a_misspelt_runtime_key_suggests_the_right_one(tmp_path: Path) -> None:
    write_yaml(tmp_path, "name: x\nruntime:\n  lodaer: local\n")
    with pytest.raises(ConfigError, match="did you mean `loader`"):
        read_project_config(tmp_path)


def test_an_unknown_loader_lists_the_choices(tmp_path: Path) -> None:
    write_yaml(tmp_path, "name: x\nruntime:\n  loader: docker\n")
    with pytest.raises(ConfigError, match="choose one of local, module"):
        read_project_config(tmp_path)


def test_a_folder_without_packflow_yaml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"packflow\.yaml is missing"):
        read_project_config(tmp_path)


def test_maintainers_must_be_strings(tmp_path: Path) -> None:
    write_yaml(tmp_path, "name: x\nmaintainers:\n  - {email: a@b.c}\n")
    with pytest.raises(ConfigError, match=r"maintainers\[0\]` must be a string, got a mapping"):
        read_project_config(tmp_path)


# --------------------------------------------------------------------------- create

SCAFFOLD = {
    "packflow.yaml",
    "requirements.txt",
    "inference.py",
    "README.md",
    "MODEL_CARD.md",
    "LICENSE.txt",
    "validate.py",
    "test_inference.py",
    "sample.jsonl",
    ".gitignore",
}


def test_create_writes_the_scaffold(tmp_path: Path) -> None:
    folder = create_project("fraud-scorer", tmp_path, description="Scores payments.")
    assert {p.name for p in folder.iterdir()} == SCAFFOLD
    config = read_project_config(folder)
    assert (config.name, config.description) == ("fraud-scorer", "Scores payments.")
    assert config.runtime.inference_backend == "inference:pipe"


def test_create_refuses_an_invalid_name(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="invalid project name '9lives'"):
        create_project("9lives", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_create_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(ProjectError, match="already exists and is not empty"):
        create_project("x", tmp_path)
    assert (tmp_path / "x" / "notes.txt").read_text() == "mine"


def test_a_created_project_validates_without_errors(tmp_path: Path) -> None:
    report = validate_project(create_project("x", tmp_path))
    assert report.errors == ()
    assert report.samples_validated == 3


def test_create_with_force_keeps_the_files_the_folder_already_holds(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "inference.py").write_text("# my model\n")
    (folder / "LICENSE.txt").write_text("MIT\n")
    create_project("p", tmp_path, force=True)
    assert (folder / "inference.py").read_text() == "# my model\n"
    assert (folder / "LICENSE.txt").read_text() == "MIT\n"
    assert (folder / "packflow.yaml").is_file()


def test_create_where_the_folder_cannot_be_written_is_a_project_error(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file, not a folder")
    with pytest.raises(ProjectError, match=r"cannot create project 'p' in .*blocker: "):
        create_project("p", tmp_path / "blocker")


# --------------------------------------------------------------------------- validate


def project(tmp_path: Path, inference: str | None = None, **files: str) -> Path:
    folder = create_project("demo", tmp_path, description="d", maintainers=["a@b.c"])
    (folder / "LICENSE.txt").write_text("MIT")
    if inference is not None:
        (folder / "inference.py").write_text(textwrap.dedent(inference))
    for name, text in files.items():
        (folder / name.replace("__", ".")).write_text(textwrap.dedent(text))
    return folder


def messages(report: object, level: str) -> list[str]:
    findings = getattr(report, "errors" if level == "error" else "warnings")
    return [str(f) for f in findings]


def test_a_complete_project_has_neither_errors_nor_warnings(tmp_path: Path) -> None:
    report = validate_project(project(tmp_path))
    assert report.findings == ()
    assert report.ok


def test_a_missing_requirements_file_is_an_error(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "requirements.txt").unlink()
    assert messages(validate_project(folder), "error") == [
        "error: requirements.txt: missing (required)"
    ]


def test_a_missing_recommended_file_is_a_warning(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "MODEL_CARD.md").unlink()
    report = validate_project(folder)
    assert report.ok
    assert messages(report, "warning") == ["warning: MODEL_CARD.md: missing (recommended)"]


def test_an_invalid_requirement_line_is_an_error_naming_the_line(tmp_path: Path) -> None:
    folder = project(tmp_path, requirements__txt="packflow\nscikit learn >= 1\n")
    assert messages(validate_project(folder), "error") == [
        "error: requirements.txt:2: not a valid requirement: 'scikit learn >= 1'"
    ]


def test_requirements_without_packflow_is_a_warning(tmp_path: Path) -> None:
    folder = project(tmp_path, requirements__txt="numpy>=1.24\n")
    assert "warning: requirements.txt: does not list packflow" in messages(
        validate_project(folder), "warning"
    )


def test_a_backend_that_fails_to_import_is_an_error(tmp_path: Path) -> None:
    folder = project(tmp_path, inference="import not_a_real_module_xyz\n")
    (error,) = messages(validate_project(folder), "error")
    assert "backend: does not load" in error
    assert "No module named 'not_a_real_module_xyz'" in error


def test_samples_that_fail_validate_are_an_error(tmp_path: Path) -> None:
    folder = project(
        tmp_path,
        inference="""
        from packflow import Pipeline
        pipe = Pipeline("demo")

        @pipe.execute
        def predict(records):
            return [{"value": {1, 2}} for _ in records]
        """,
    )
    errors = messages(validate_project(folder), "error")
    assert [error.split(" validate() failed")[0] for error in errors] == [
        f"error: sample.jsonl:{number}:" for number in (1, 2, 3)
    ]


def test_validate_names_the_sample_line_that_fails(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "sample.jsonl").write_text('{"value": 0.1}\n\n{"nothing": 1}\n{"value": 2}\n')
    (error,) = messages(validate_project(folder), "error")
    assert error.startswith("error: sample.jsonl:3: validate() failed: stage execute `score`")


def test_validate_warns_when_sample_outputs_lack_a_declared_output_key(tmp_path: Path) -> None:
    folder = project(tmp_path)
    text = (folder / "packflow.yaml").read_text()
    text = text.replace("backend_config: {}", "backend_config:\n  output_keys: [label]")
    (folder / "packflow.yaml").write_text(text)
    report = validate_project(folder)
    assert report.ok
    assert report.samples_validated == 3
    (warning,) = messages(report, "warning")
    assert warning == (
        "warning: sample.jsonl: output_keys: 'label' is missing from the output of 3 of 3 "
        "sample(s) (lines 1, 2, 3)"
    )


def test_a_project_without_samples_gets_a_warning(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "sample.jsonl").unlink()
    text = (folder / "packflow.yaml").read_text().replace("sample_inputs: sample.jsonl", "")
    (folder / "packflow.yaml").write_text(text)
    report = validate_project(folder)
    assert report.ok
    assert report.samples_validated is None
    assert any("no sample inputs" in m for m in messages(report, "warning"))


def test_a_missing_inference_module_is_an_error(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "inference.py").unlink()
    assert (
        "names inference.py, which does not exist"
        in messages(validate_project(folder), "error")[0]
    )


def test_a_folder_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    report = validate_project(tmp_path / "nowhere")
    assert messages(report, "error") == [f"error: {tmp_path / 'nowhere'}: no such project folder"]


# --------------------------------------------------------------------------- export


def test_the_archive_is_named_after_name_and_version_with_underscores(tmp_path: Path) -> None:
    folder = create_project("fraud-scorer", tmp_path / "src", version="1.2.0")
    result = export_project(folder, tmp_path / "dist")
    assert result.archive == tmp_path / "dist" / "fraud_scorer-1.2.0.zip"
    with zipfile.ZipFile(result.archive) as archive:
        assert set(archive.namelist()) == SCAFFOLD


def test_export_leaves_out_vcs_caches_virtualenvs_and_secrets(tmp_path: Path) -> None:
    folder = project(tmp_path)
    for relpath in [
        ".git/config",
        ".hg/store",
        "__pycache__/inference.cpython-311.pyc",
        "models/__pycache__/m.pyc",
        ".mypy_cache/x.json",
        ".pytest_cache/v",
        ".ruff_cache/c",
        ".venv/bin/python",
        "venv/lib/x.py",
        "env/x",
        "myenv/pyvenv.cfg",
        ".env",
        ".env.production",
        "certs/server.pem",
        "id_rsa",
    ]:
        (folder / relpath).parent.mkdir(parents=True, exist_ok=True)
        (folder / relpath).write_text("x")
    (folder / ".env.example").write_text("API_KEY=")
    (folder / "models").mkdir(exist_ok=True)
    (folder / "models" / "weights.bin").write_text("w")
    files = set(list_project_files(folder))
    assert files == SCAFFOLD | {".env.example", "models/weights.bin"}


def test_export_honours_gitignore_patterns_negations_and_nested_files(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / ".gitignore").write_text(
        "# data is too big\n/data/\n*.log\n!keep.log\nbuild/\n**/tmp/**\n"
    )
    for relpath in [
        "data/big.csv",
        "src/data/small.csv",
        "run.log",
        "keep.log",
        "nested/debug.log",
        "build/out.txt",
        "a/tmp/b/c.txt",
        "nested/notes.md",
        "nested/secret.txt",
    ]:
        (folder / relpath).parent.mkdir(parents=True, exist_ok=True)
        (folder / relpath).write_text("x")
    (folder / "nested" / ".gitignore").write_text("secret.txt\n")
    files = set(list_project_files(folder))
    assert files == SCAFFOLD | {
        "src/data/small.csv",
        "keep.log",
        "nested/notes.md",
        "nested/.gitignore",
    }


@given(st.lists(st.from_regex(r"[a-z]{1,6}\.(txt|csv)", fullmatch=True), min_size=1, max_size=5))
@settings(max_examples=25, deadline=None)
def test_a_file_named_in_gitignore_is_never_exported(
    tmp_path_factory: pytest.TempPathFactory, names: list[str]
) -> None:
    folder = tmp_path_factory.mktemp("p")
    (folder / "packflow.yaml").write_text("name: p\n")
    ignored = names[: len(names) // 2 + 1]
    (folder / ".gitignore").write_text("\n".join(ignored) + "\n")
    for name in names:
        (folder / name).write_text("x")
    files = set(list_project_files(folder))
    assert files.isdisjoint(ignored)
    assert set(names) - set(ignored) <= files


def test_a_symlink_out_of_the_project_is_not_exported(tmp_path: Path) -> None:
    folder = project(tmp_path / "p")
    (tmp_path / "private.txt").write_text("secret")
    (folder / "link.txt").symlink_to(tmp_path / "private.txt")
    assert "link.txt" not in list_project_files(folder)


def test_export_skips_archives_of_earlier_exports(tmp_path: Path) -> None:
    folder = project(tmp_path)
    export_project(folder, folder)
    second = export_project(folder, folder)
    assert "demo-0.1.0.zip" not in second.files
    with zipfile.ZipFile(second.archive) as archive:
        assert set(archive.namelist()) == SCAFFOLD


def test_validate_names_packflow_yaml_once_in_a_config_finding(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "packflow.yaml").write_text("name: demo\nruntime: 5\n")
    (finding,) = validate_project(folder).errors
    assert str(finding) == "error: packflow.yaml: `runtime` must be a mapping, got a number (5)"


def test_export_refuses_when_gitignore_would_leave_out_the_inference_module(
    tmp_path: Path,
) -> None:
    folder = project(tmp_path)
    with open(folder / ".gitignore", "a") as handle:
        handle.write("inference.py\npackflow.yaml\n")
    with pytest.raises(ProjectError, match=r"would leave out packflow\.yaml, inference\.py"):
        export_project(folder, tmp_path / "dist")
    assert not (tmp_path / "dist" / "demo-0.1.0.zip").exists()


def test_export_refuses_a_project_with_validation_errors(tmp_path: Path) -> None:
    folder = project(tmp_path, inference="raise RuntimeError('broken')\n")
    with pytest.raises(ProjectError, match="validation found an error: backend") as info:
        export_project(folder, tmp_path / "dist")
    assert "RuntimeError: broken" in str(info.value.problems[0])
    assert not (tmp_path / "dist" / "demo-0.1.0.zip").exists()


SEGMENTS = st.sampled_from(["a", "b", "d", "*", "a*", "?", "*.txt", "**", "[ab]", "x.py"])
PATTERNS = st.builds(
    lambda negate, anchor, segments, trailing: (
        ("!" if negate else "")
        + ("/" if anchor else "")
        + "/".join(segments)
        + ("/" if trailing else "")
    ),
    st.booleans(),
    st.booleans(),
    st.lists(SEGMENTS, min_size=1, max_size=3),
    st.booleans(),
)
TREE = st.lists(
    st.builds(
        lambda dirs, name: "/".join([*dirs, name]),
        st.lists(st.sampled_from(["a", "b", "d"]), max_size=2),
        st.sampled_from(["a.txt", "b.txt", "x.py", "ab", "c.md"]),
    ),
    min_size=1,
    max_size=8,
    unique=True,
)


@given(
    tree=TREE,
    root_rules=st.lists(PATTERNS, max_size=4),
    nested_rules=st.lists(PATTERNS, max_size=2),
)
@settings(max_examples=40, deadline=None)
def test_gitignore_handling_agrees_with_git(
    tmp_path_factory: pytest.TempPathFactory,
    tree: list[str],
    root_rules: list[str],
    nested_rules: list[str],
) -> None:
    folder = tmp_path_factory.mktemp("repo")
    files = [f for f in tree if not any(f.startswith(other + "/") for other in tree)]
    for relpath in files:
        (folder / relpath).parent.mkdir(parents=True, exist_ok=True)
        (folder / relpath).write_text("x")
    (folder / ".gitignore").write_text("\n".join(root_rules) + "\n")
    if (folder / "a").is_dir():
        (folder / "a" / ".gitignore").write_text("\n".join(nested_rules) + "\n")
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    listed = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "-z"],
        cwd=folder,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    expected = sorted(name for name in listed.split("\0") if name)
    assert list_project_files(folder) == expected


# --------------------------------------------------------------------------- old paths
# (the layering of the package is held by tests/test_architecture.py)


def test_the_old_import_path_packflow_project_names_the_same_objects() -> None:
    import packflow.project as old
    import packflow.projects as new

    assert set(old.__all__) == set(new.__all__)
    assert all(getattr(old, name) is getattr(new, name) for name in new.__all__)


# --------------------------------------------------------------------------- PackflowProject


def test_packflow_project_runs_the_original_packflow_workflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import packflow

    monkeypatch.chdir(tmp_path)
    project = packflow.PackflowProject.create("my_test_project")
    assert project.base_dir == (tmp_path / "my_test_project").resolve()
    assert project.has_packflow_config
    assert repr(project) == f"PackflowProject @ {project.base_dir}"
    config = project.load_config()
    assert (config.name, config.version) == ("my_test_project", "0.1.0")
    errors, warnings = project.validate_required_files()
    assert errors == []
    assert "LICENSE.txt: is empty" in warnings
    (tmp_path / "exports").mkdir()
    archive = project.export(output_directory=str(tmp_path / "exports"))
    assert archive == (tmp_path / "exports" / "my_test_project-0.1.0.zip").resolve()
    with zipfile.ZipFile(archive) as zipped:
        assert {"packflow.yaml", "inference.py", "requirements.txt"} <= set(zipped.namelist())


def test_packflow_project_create_refuses_an_existing_folder_as_a_file_exists_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from packflow import PackflowProject

    monkeypatch.chdir(tmp_path)
    (tmp_path / "existing_project").mkdir()
    with pytest.raises(FileExistsError, match="already exists and is empty"):
        PackflowProject.create("existing_project")
    assert PackflowProject.create("existing_project", force=True).has_packflow_config


def test_packflow_project_validate_required_files_lists_a_missing_requirements_file(
    tmp_path: Path,
) -> None:
    from packflow.project import PackflowProject

    project = PackflowProject.create("p", directory=tmp_path)
    (project.base_dir / "requirements.txt").unlink()
    errors, _warnings = project.validate_required_files()
    assert errors == ["requirements.txt: missing (required)"]
    with pytest.raises(ProjectError, match=r"requirements\.txt: missing") as info:
        project.export(output_directory=str(tmp_path))
    assert info.value.problems == errors


def test_packflow_project_export_does_not_run_the_projects_code(tmp_path: Path) -> None:
    from packflow import PackflowProject

    project = PackflowProject.create("p", directory=tmp_path)
    (project.base_dir / "inference.py").write_text("raise SystemExit('ran')\n", encoding="utf-8")
    assert project.export(output_directory=str(tmp_path)).is_file()


def test_dir_of_packflow_lists_only_the_public_names() -> None:
    import packflow

    assert dir(packflow) == sorted(packflow.__all__)
    assert "annotations" not in dir(packflow) and "pipeline" not in dir(packflow)
    assert all(hasattr(packflow, name) for name in packflow.__all__)


def test_import_packflow_leaves_the_cli_projects_checker_and_numpy_for_later() -> None:
    # What `import packflow` must not pay for (issue 13's import-time goal); timed in
    # benchmarks/bench_import.py.
    code = (
        "import sys, packflow\n"
        "heavy = ('yaml', 'importlib.metadata', 'argparse', 'asyncio', 'numpy', "
        "'packflow.cli', 'packflow.projects', 'packflow.loaders', 'packflow.checker', "
        "'packflow.typecheck', 'packflow.compose', 'packflow.runtime.streaming', 'cattrs', "
        "'packflow.preprocess', 'packflow._types', 'packflow.serve', 'starlette')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_reading_a_manifest_imports_neither_the_loaders_nor_validation() -> None:
    code = (
        "import sys, packflow.projects.manifest\n"
        "print(sorted(m for m in sys.modules if m.startswith(('packflow.loaders', "
        "'packflow.projects.validate'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_submodules_stay_reachable_as_attributes_of_packflow() -> None:
    code = "import packflow\nprint(packflow.loaders.LocalLoader.__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "LocalLoader"
    import packflow

    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        _ = packflow.no_such_name  # type: ignore[attr-defined]
