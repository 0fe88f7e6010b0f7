"""Config loading: validation, secrets, defaults and error messages that quote the bad field."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from sluicegate.cli.main import main
from sluicegate.config import load_config
from sluicegate.config.loader import parse_config
from sluicegate.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sluicegate.yaml"
    path.write_text(text)
    return path


def test_minimal_spec_example_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SPEC §3 example (minus not-yet-shipped providers) loads with secrets resolved from env."""
    monkeypatch.setenv("SLUICEGATE_MASTER_KEY", "sk-master")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant")
    path = write(
        tmp_path,
        """
master_key: env:SLUICEGATE_MASTER_KEY
database_url: sqlite:///sluicegate.db
models:
  - name: gpt-4o-mini
    provider: openai
    model: gpt-4o-mini
    api_key: env:OPENAI_API_KEY
    weight: 3
    rpm: 500
    tpm: 200000
    price: {input_per_mtok: 0.15, output_per_mtok: 0.60}
  - name: claude-sonnet
    provider: anthropic
    model: claude-sonnet-4-5
    api_key: env:ANTHROPIC_API_KEY
  - name: demo
    provider: mock
router:
  strategy: least-latency
  retries: 2
  timeout_s: 600
  ttft_timeout_s: 30
  fallbacks:
    gpt-4o-mini: [claude-sonnet]
cache:
  backend: memory
  ttl_s: 3600
""",
    )
    config = load_config(path)
    assert config.master_key == "sk-master"
    assert [m.name for m in config.models] == ["gpt-4o-mini", "claude-sonnet", "demo"]
    assert config.models[0].api_key == "sk-openai"
    assert config.models[0].price is not None and config.models[0].price.output_per_mtok == 0.60
    assert config.router.fallbacks == {"gpt-4o-mini": ["claude-sonnet"]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models:\n  - name: a\n    provider: mock\n    colour: red\n", "models[0].colour: unknown field"),
        ("nonsense: 1\n", "nonsense: unknown field"),
        ("models:\n  - provider: mock\n", "models[0].name: required field is missing"),
        (
            "models:\n  - name: a\n    provider: mock\n    rpm: lots\n",
            "models[0].rpm: Expected `int | null`, got `str`",
        ),
        (
            "models:\n  - name: a\n    provider: openai\n    api_key: env:SG_TEST_MISSING\n",
            "models[0].api_key: env var SG_TEST_MISSING is not set",
        ),
        ("models:\n  - name: a\n    provider: openai\n", "models[0].api_key: required for provider openai"),
        ("models:\n  - name: a\n    provider: nope\n", "models[0].provider: unknown provider 'nope'"),
        ("models:\n  - name: a\n    provider: gemini\n", "models[0].api_key: required for provider gemini"),
        ("models:\n  - name: a\n    provider: mock\n    weight: 0\n", "models[0].weight: must be > 0"),
        ("models:\n  - name: a\n    provider: mock\n    mock: {fail_rate: 2}\n", "models[0].mock.fail_rate"),
        ("models:\n  - name: a\n    provider: openai-compatible\n", "models[0].api_base: required"),
        (
            "models:\n  - name: a\n    provider: openai-compatible\n    preset: foo\n",
            "models[0].preset: unknown preset",
        ),
        ("router:\n  strategy: fastest\n", "router.strategy: Invalid enum value 'fastest'"),
        (
            "models:\n  - name: a\n    provider: mock\nrouter:\n  fallbacks:\n    a: [b]\n",
            "router.fallbacks.a[0]: no model named 'b'",
        ),
    ],
)
def test_bad_config_errors_quote_the_field_path(
    text: str, message: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each invalid config is rejected with a message that starts with the bad field's path."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert message in info.value.message


def test_file_secret_is_read_and_stripped(tmp_path: Path) -> None:
    """`file:/path` reads the secret from a file, without its trailing newline."""
    secret = tmp_path / "key.txt"
    secret.write_text("sk-from-file\n")
    config = parse_config({"master_key": f"file:{secret}", "models": [{"name": "d", "provider": "mock"}]})
    assert config.master_key == "sk-from-file"


def test_missing_secret_file_names_field(tmp_path: Path) -> None:
    """A `file:` secret that cannot be read is an error on that field."""
    with pytest.raises(ConfigError, match=r"^master_key: cannot read secret file"):
        parse_config({"master_key": f"file:{tmp_path}/absent"})


def test_invalid_yaml_reports_line(tmp_path: Path) -> None:
    """A YAML syntax error reports the line it was found on."""
    with pytest.raises(ConfigError, match=r"invalid YAML \(line 3"):
        load_config(write(tmp_path, "models:\n  - name: a\n\tprovider: mock\n"))


def test_defaults_without_file_have_demo_and_env_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no config file: `demo` on mock, plus one model per provider key in the environment."""
    for name in (
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GROQ_API_KEY",
        "DEEPSEEK_API_KEY",
        "TOGETHER_API_KEY",
        "FIREWORKS_API_KEY",
        "OPENROUTER_API_KEY",
        "XAI_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant")
    config = load_config(None, use_search=False)
    assert [(m.name, m.provider) for m in config.models] == [
        ("demo", "mock"),
        ("claude-sonnet-4-5", "anthropic"),
    ]


def test_master_key_falls_back_to_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no `master_key` in the file, SLUICEGATE_MASTER_KEY is used."""
    monkeypatch.setenv("SLUICEGATE_MASTER_KEY", "sk-env-master")
    assert parse_config({}).master_key == "sk-env-master"


def test_config_is_frozen() -> None:
    """A loaded config cannot be changed in place (it is shared by in-flight requests)."""
    config = parse_config({"models": [{"name": "d", "provider": "mock"}]})
    with pytest.raises(AttributeError):
        config.master_key = "x"  # type: ignore[misc]


def test_config_check_command_reports_ok_and_errors(tmp_path: Path) -> None:
    """`sluicegate config check` exits 0 on a good file and 1 with the field path on a bad one."""
    runner = CliRunner()
    good = write(tmp_path, "models:\n  - name: demo\n    provider: mock\n")
    result = runner.invoke(main, ["config", "check", str(good)])
    assert result.exit_code == 0, result.output
    assert "ok (1 deployment(s) in 1 model group(s))" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - name: demo\n    provider: mock\n    speed: 11\n")
    result = runner.invoke(main, ["config", "check", str(bad)])
    assert result.exit_code == 1
    assert "models[0].speed: unknown field" in result.output


def test_serve_refuses_without_master_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`sluicegate serve` without a master key and without --dev exits with a clear message."""
    monkeypatch.delenv("SLUICEGATE_MASTER_KEY", raising=False)
    monkeypatch.delenv("SLUICEGATE_CONFIG", raising=False)
    good = write(tmp_path, "models:\n  - name: demo\n    provider: mock\n")
    result = CliRunner().invoke(main, ["serve", "--config", str(good)])
    assert result.exit_code == 2
    assert "refusing to start without a master key" in result.output
