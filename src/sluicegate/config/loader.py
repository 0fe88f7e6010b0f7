"""Load a config: find the file, read YAML, resolve `env:`/`file:` secrets, validate, apply defaults.

Every error is a ConfigError whose message starts with the path of the bad field, e.g.
`models[2].api_key: env var OPENAI_API_KEY is not set`, so `sluicegate config check` can be
pasted straight into a bug report.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import msgspec
import yaml

from ..errors import ConfigError
from .schema import Config, ModelEntry

DEFAULT_FILE = "sluicegate.yaml"

# Models added to the built-in defaults when their provider's key is in the environment.
# (env var, public name, provider, provider model id, preset)
ENV_DEFAULT_MODELS: tuple[tuple[str, str, str, str, str | None], ...] = (
    ("OPENAI_API_KEY", "gpt-4o-mini", "openai", "gpt-4o-mini", None),
    ("ANTHROPIC_API_KEY", "claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5", None),
    ("GROQ_API_KEY", "llama-3.3-70b", "openai-compatible", "llama-3.3-70b-versatile", "groq"),
    ("DEEPSEEK_API_KEY", "deepseek-chat", "openai-compatible", "deepseek-chat", "deepseek"),
    (
        "TOGETHER_API_KEY",
        "llama-3.3-70b-together",
        "openai-compatible",
        "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "together",
    ),
    (
        "FIREWORKS_API_KEY",
        "llama-3.3-70b-fireworks",
        "openai-compatible",
        "accounts/fireworks/models/llama-v3p3-70b-instruct",
        "fireworks",
    ),
    ("OPENROUTER_API_KEY", "openrouter-auto", "openai-compatible", "openrouter/auto", "openrouter"),
    ("XAI_API_KEY", "grok-4", "openai-compatible", "grok-4", "xai"),
)

_SECRET_RE = re.compile(r"^(env|file):(.+)$")
_MSGSPEC_PATH_RE = re.compile(r"^(?P<msg>.*) - at `\$(?P<path>[^`]*)`$")


def find_config_path(explicit: str | None) -> Path | None:
    """`--config`, then `$SLUICEGATE_CONFIG`, then `./sluicegate.yaml`, else None (built-in defaults)."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("SLUICEGATE_CONFIG")
    if env:
        return Path(env)
    local = Path(DEFAULT_FILE)
    return local if local.exists() else None


def load_config(path: str | Path | None = None, *, use_search: bool = True) -> Config:
    """Load and validate a config; with no file, the built-in defaults (SPEC §1)."""
    found = find_config_path(str(path) if path else None) if use_search or path else None
    if found is None:
        raw: dict[str, Any] = {}
        source = "built-in defaults"
    else:
        raw = _read_yaml(found)
        source = str(found)
    config = parse_config(raw, source=source)
    if found is None:
        config = _with_default_models(config)
    return config


def parse_config(raw: Any, *, source: str = "<config>") -> Config:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(raw).__name__}")
    resolved = _resolve_secrets(raw, "")
    try:
        config = msgspec.convert(resolved, Config, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(_format_validation_error(str(exc))) from exc
    config = _apply_env_fallbacks(config)
    _check_semantics(config)
    return config


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(f"{path}: invalid YAML{where}: {getattr(exc, 'problem', exc)}") from exc


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _resolve_secrets(node: Any, path: str) -> Any:
    """Replace every `env:NAME` / `file:/path` string with the secret it names."""
    if isinstance(node, dict):
        return {k: _resolve_secrets(v, _join(path, str(k))) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_secrets(v, _join(path, i)) for i, v in enumerate(node)]
    if isinstance(node, str):
        match = _SECRET_RE.match(node)
        if match is None:
            return node
        kind, ref = match.group(1), match.group(2).strip()
        if kind == "env":
            value = os.environ.get(ref)
            if value is None or value == "":
                raise ConfigError(f"{path}: env var {ref} is not set")
            return value
        try:
            return Path(ref).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read secret file {ref}: {exc.strerror or exc}") from exc
    return node


def _format_validation_error(message: str) -> str:
    match = _MSGSPEC_PATH_RE.match(message)
    # msgspec leaves out " - at `$`" for errors on the top-level object itself.
    path = match.group("path").lstrip(".") if match else ""
    msg = match.group("msg") if match else message
    unknown = re.match(r"Object contains unknown field `([^`]+)`", msg)
    if unknown:
        return f"{_join(path, unknown.group(1))}: unknown field"
    missing = re.match(r"Object missing required field `([^`]+)`", msg)
    if missing:
        return f"{_join(path, missing.group(1))}: required field is missing"
    return f"{path or '<top level>'}: {msg}"


def _apply_env_fallbacks(config: Config) -> Config:
    """Master key and provider keys from their standard environment variables when not in the file."""
    from ..providers.registry import default_api_key_env

    updates: dict[str, Any] = {}
    if config.master_key is None and os.environ.get("SLUICEGATE_MASTER_KEY"):
        updates["master_key"] = os.environ["SLUICEGATE_MASTER_KEY"]
    models = []
    changed = False
    for entry in config.models:
        if entry.api_key is None:
            env_name = default_api_key_env(entry.provider, entry.preset)
            if env_name and os.environ.get(env_name):
                entry = msgspec.structs.replace(entry, api_key=os.environ[env_name])
                changed = True
        models.append(entry)
    if changed:
        updates["models"] = models
    return msgspec.structs.replace(config, **updates) if updates else config


def _check_semantics(config: Config) -> None:
    from ..providers.registry import check_entry

    for index, entry in enumerate(config.models):
        path = f"models[{index}]"
        if not entry.name.strip():
            raise ConfigError(f"{path}.name: must not be empty")
        if entry.weight <= 0:
            raise ConfigError(f"{path}.weight: must be > 0, got {entry.weight}")
        for field in ("rpm", "tpm"):
            value = getattr(entry, field)
            if value is not None and value <= 0:
                raise ConfigError(f"{path}.{field}: must be > 0, got {value}")
        for field in ("timeout_s", "connect_timeout_s"):
            value = getattr(entry, field)
            if value is not None and value <= 0:
                raise ConfigError(f"{path}.{field}: must be > 0, got {value}")
        if entry.mock is not None:
            if entry.provider != "mock":
                raise ConfigError(f"{path}.mock: only allowed with provider: mock")
            for field in ("fail_rate", "timeout_rate"):
                value = getattr(entry.mock, field)
                if not 0.0 <= value <= 1.0:
                    raise ConfigError(f"{path}.mock.{field}: must be between 0 and 1, got {value}")
            if not 400 <= entry.mock.fail_status <= 599:
                raise ConfigError(
                    f"{path}.mock.fail_status: must be an HTTP error status, got {entry.mock.fail_status}"
                )
        check_entry(entry, path)
    if config.passthrough:
        from ..api.passthrough import check_config as check_passthrough

        check_passthrough(config)
    from ..routing.checks import check_router

    check_router(config)  # router:, fallbacks and the routing fields of models[] (issue #5)
    names = {m.name for m in config.models}
    for name in config.model_budgets:
        if name not in names:
            raise ConfigError(f"model_budgets.{name}: no model named {name!r} in models")
    webhook = config.alerts.webhook_url
    if webhook is not None and not webhook.startswith(("http://", "https://")):
        raise ConfigError("alerts.webhook_url: must be an http:// or https:// URL")
    server = config.server
    if not 0 < server.port < 65536:
        raise ConfigError(f"server.port: must be 1-65535, got {server.port}")
    if server.workers < 1:
        raise ConfigError(f"server.workers: must be >= 1, got {server.workers}")
    if server.max_body_bytes < 1024:
        raise ConfigError(f"server.max_body_bytes: must be >= 1024, got {server.max_body_bytes}")
    if server.drain_timeout_s <= 0:
        raise ConfigError(f"server.drain_timeout_s: must be > 0, got {server.drain_timeout_s:g}")


def _with_default_models(config: Config) -> Config:
    """The embedded defaults: `demo` on the mock provider plus one model per provider key in the env."""
    models: list[ModelEntry] = [ModelEntry(name="demo", provider="mock")]
    for env_name, name, provider, model, preset in ENV_DEFAULT_MODELS:
        key = os.environ.get(env_name)
        if key:
            models.append(ModelEntry(name=name, provider=provider, model=model, api_key=key, preset=preset))
    return msgspec.structs.replace(config, models=models)
