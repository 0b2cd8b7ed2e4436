"""What an alias is, as data: the entries of the models file and of the admin API, and their checks.

An alias is a public model name that stands for several **deployments** (``provider/model``, each with an
optional ``base_url`` for another host of the same backend and a ``weight``), tried in the order the
``strategy`` picks, then for its **fallbacks** (plain ``provider/model`` ids, in order)::

    aliases:
      - name: fast
        deployments:
          - openai-compat/a                  # a model id, weight 1
          - model: ollama/llama3             # another host of the same backend
            base_url: http://gpu-2:11434
            weight: 2
        fallbacks: [local/smollm2-135m-instruct]
        strategy: weighted                   # or least-busy
        retries: 1                           # more rounds over the deployments, after a backoff
        timeout_seconds: 30                  # per attempt, up to its first byte (default: the provider's)
        cooldown: {failures: 3, seconds: 30} # 3 failures within 30 s: out for 30 s

The shape is checked by the pydantic models below; :func:`check_alias` checks what needs the running
providers (a known provider prefix, a backend with a base URL to override, a name that shadows nothing).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from ailab.errors import InvalidInput
from ailab.providers.credentials import http_url
from ailab.providers.registry import ALIAS_PREFIX, ProviderRegistry

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
# provider/model: the model part may be any printable text ("Qwen/Qwen2.5-0.5B", "llama3:latest").
MODEL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[^\x00-\x20\x7f]+$"
# What http_url() accepts, as far as a pattern says it (the check runs too): http(s), a host, a port
# (1-65535), a path; no user info, query or fragment.
_PORT = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_HOST = r"([A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\])"  # a name, an IPv4 or an [IPv6] address
BASE_URL_PATTERN = rf"^https?://{_HOST}(:{_PORT})?(/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?$"
PIPELINE_PREFIX = "pipeline"  # pipeline/<name> model ids (services/gateway/pipelines.py)
MAX_DEPLOYMENTS = 16
MAX_FALLBACKS = 8


def _model_id(value: Any) -> Any:
    """Says what is wrong in words before the pattern would say it in a regular expression."""
    if isinstance(value, str) and not re.fullmatch(MODEL_ID_PATTERN, value):
        raise ValueError(f"{value[:80]!r} is not a model id like 'ollama/llama3' (provider/model)")
    return value


ModelId = Annotated[  # the pattern first, so the schema shows it; the words run before it
    str,
    Field(pattern=MODEL_ID_PATTERN, max_length=256, description="a model id: provider/model"),
    BeforeValidator(_model_id),
]


class DeploymentSpec(BaseModel):
    """One deployment of an alias. A plain string is taken as its ``model``."""

    model_config = ConfigDict(extra="forbid")

    model: ModelId
    base_url: str | None = Field(
        None,
        max_length=512,
        pattern=BASE_URL_PATTERN,
        description="another host of the same backend (its provider's key is used), e.g. http://gpu-2:11434",
    )
    weight: float = Field(1.0, gt=0, le=1000, description="its share of the requests among the healthy ones")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"model": value} if isinstance(value, str) else value

    @field_validator("base_url", mode="before")
    @classmethod
    def _http_url(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        problem = http_url(value)
        if problem is not None:
            raise ValueError(f"base_url {problem}")
        return value.rstrip("/")

    @property
    def key(self) -> str:
        """What names this deployment in cool-downs (shared by every alias that has it) and messages."""
        return f"{self.model}@{self.base_url}" if self.base_url else self.model

    def as_yaml(self) -> str | dict[str, Any]:
        """The entry as the file writes it: a plain model id when nothing else is set."""
        if self.base_url is None and self.weight == 1.0:
            return self.model
        return self.model_dump(exclude_defaults=True)


class CooldownSpec(BaseModel):
    """When a deployment is left out: after ``failures`` failures within ``seconds``, for ``seconds``
    (a 429's Retry-After sets its own period); 0 seconds: never."""

    model_config = ConfigDict(extra="forbid")

    failures: int = Field(3, ge=1, le=100)
    seconds: float = Field(30.0, ge=0, le=3600)


class AliasSettings(BaseModel):
    """An alias's deployments, fallbacks and routing (the module docstring shows each)."""

    model_config = ConfigDict(extra="forbid")

    deployments: list[DeploymentSpec] = Field(min_length=1, max_length=MAX_DEPLOYMENTS)
    fallbacks: list[ModelId] = Field(
        default_factory=list,
        max_length=MAX_FALLBACKS,
        description="model ids (provider/model) tried in order once every deployment failed",
    )
    strategy: Literal["weighted", "least-busy"] = Field(
        "weighted",
        description="weighted: at random by weight; least-busy: the fewest requests in flight per weight",
    )
    retries: int = Field(1, ge=0, le=5, description="more rounds over the deployments, after a backoff")
    timeout_seconds: float | None = Field(
        None, gt=0, le=3600, description="per attempt, up to its first byte (default: the provider's)"
    )
    cooldown: CooldownSpec = Field(default_factory=CooldownSpec)

    @model_validator(mode="after")
    def _distinct(self) -> AliasSettings:
        keys = [d.key for d in self.deployments]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(f"deployment {twice[0]!r} is listed twice")
        if len(set(self.fallbacks)) != len(self.fallbacks):
            raise ValueError("a fallback is listed twice")
        return self


class AliasSpec(AliasSettings):
    """An alias: its name and settings."""

    name: str = Field(pattern=NAME_PATTERN, description="letters, digits, '.', '_', ':' or '-'; max 64")

    def as_yaml(self) -> dict[str, Any]:
        """The entry as the file writes it: the name first, defaults left out."""
        entry: dict[str, Any] = {"name": self.name, "deployments": [d.as_yaml() for d in self.deployments]}
        rest = self.model_dump(exclude_defaults=True, exclude={"name", "deployments"})
        return {**entry, **rest}


def reserved_names(registry: ProviderRegistry) -> set[str]:
    """Names an alias may not take (lower-cased): every provider's and plugin's, their other names, and
    the ``alias`` and ``pipeline`` prefixes."""
    names = {ALIAS_PREFIX, PIPELINE_PREFIX, *registry.providers}
    for plugin in registry.plugins.plugins.values():
        names |= {plugin.name, *plugin.aliases}
    return {name.lower() for name in names}


def check_alias(spec: AliasSpec, registry: ProviderRegistry) -> None:
    """What the shape cannot say: each model names a configured provider, a ``base_url`` goes to a
    backend that has one, and the name shadows no provider. Raises :class:`InvalidInput` (422)."""
    problems: list[str] = []
    if spec.name.lower() in reserved_names(registry):
        problems.append(f"the name {spec.name!r} is taken by a provider or a model id prefix")
    for deployment in spec.deployments:
        provider = deployment.model.partition("/")[0]
        if provider not in registry.providers:
            problems.append(f"deployment {deployment.model!r}: {_unknown(provider, registry)}")
        elif deployment.base_url is not None and not registry.takes_base_url(provider):
            problems.append(f"deployment {deployment.model!r}: the {provider!r} provider has no base URL")
    for fallback in spec.fallbacks:
        provider = fallback.partition("/")[0]
        if provider == ALIAS_PREFIX:
            problems.append(f"fallback {fallback!r}: a fallback names a provider's model, not an alias")
        elif provider not in registry.providers:
            problems.append(f"fallback {fallback!r}: {_unknown(provider, registry)}")
    if problems:
        raise InvalidInput(f"alias {spec.name!r}: " + "; ".join(problems))


def _unknown(provider: str, registry: ProviderRegistry) -> str:
    known = ", ".join(sorted(registry.providers)) or "none"
    return f"unknown provider {provider!r} (configured: {known})"
