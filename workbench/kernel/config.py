"""The kernel's settings: defaults, then ``$WORKBENCH_HOME/kernel.toml``, then environment.

Each setting is one row of ``SETTINGS`` (name, type, environment variable, meaning), so the
file format, the environment overrides and the documentation (docs/kernel.md) agree.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from workbench.errors import InputError, about
from workbench.home import workbench_home

CONFIG_NAME = "kernel.toml"
DEFAULT_BROKER_URL = "http://127.0.0.1:8080"
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True)
class KernelConfig:
    broker_url: str = DEFAULT_BROKER_URL
    # auto | simulated | gramine-sgx | cvm
    runtime: str = "auto"
    # auto may choose the simulated TEE only when this is true (never silently).
    allow_simulation: bool = False
    # Where catalog.json and the sealed files live ("" = $WORKBENCH_HOME/data).
    data_dir: str = ""
    # How long a cell waits for the analyst to answer a release request in the frontend.
    approval_timeout_s: float = 300.0
    # How long to wait for the data owner when a resource needs the owner's approval.
    owner_approval_wait_s: float = 900.0
    # Approve releases without asking (recorded by the broker as non-interactive).
    auto_approve: bool = False
    broker_timeout_s: float = 30.0

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser() if self.data_dir else workbench_home() / "data"


# name -> (type, environment variable, meaning)
SETTINGS: dict[str, tuple[type, str, str]] = {
    "broker_url": (str, "WORKBENCH_KBS_URL", "URL of the data owner's key broker"),
    "runtime": (str, "WORKBENCH_KERNEL_RUNTIME",
                "auto, simulated, gramine-sgx, cvm or azure-cvm (the provisioner sets it for "
                "the kernel)"),
    "allow_simulation": (bool, "WORKBENCH_ALLOW_SIMULATION",
                         "let runtime 'auto' fall back to the simulated TEE on machines "
                         "without TEE hardware"),
    "data_dir": (str, "WORKBENCH_DATA_DIR",
                 "directory holding catalog.json and the sealed files "
                 "(default $WORKBENCH_HOME/data)"),
    "approval_timeout_s": (float, "WORKBENCH_APPROVAL_TIMEOUT_S",
                           "seconds a cell waits for the analyst's answer in the frontend"),
    "owner_approval_wait_s": (float, "WORKBENCH_OWNER_APPROVAL_WAIT_S",
                              "seconds to wait for the data owner's approval, where the "
                              "broker asks for one"),
    "auto_approve": (bool, "WORKBENCH_AUTO_APPROVE",
                     "approve releases without asking (audited as non-interactive)"),
    "broker_timeout_s": (float, "WORKBENCH_BROKER_TIMEOUT_S",
                         "seconds one HTTP request to the broker may take"),
}


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``kernel.toml`` under the WORKBENCH_HOME of ``environ`` (default: this process's)."""
    configured = (os.environ if environ is None else environ).get("WORKBENCH_HOME")
    home = Path(configured).expanduser() if configured else workbench_home()
    return home / CONFIG_NAME


def _coerce(name: str, value: Any, source: str) -> Any:
    kind = SETTINGS[name][0]
    if kind is bool:
        if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
            return value.strip().lower() in TRUE_WORDS
        if isinstance(value, bool):
            return value
        raise InputError(about(source, f"'{name}' must be true or false"))
    if kind is float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InputError(about(source, f"'{name}' must be a number of seconds")) from None
        if isinstance(value, bool) or not number > 0:
            raise InputError(about(source, f"'{name}' must be a positive number of seconds"))
        return number
    if not isinstance(value, str):
        raise InputError(about(source, f"'{name}' must be a string"))
    return value


def _from_file(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise InputError(about(path, f"cannot read ({err.strerror})")) from None
    try:
        data = tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(about(path, f"not valid TOML ({err})")) from None
    data = data.get("kernel", data)
    unknown = sorted(set(data) - set(SETTINGS))
    if unknown:
        raise InputError(about(path, f"unknown setting(s): {', '.join(unknown)} "
                                     f"(known: {', '.join(SETTINGS)})"))
    return {k: _coerce(k, v, str(path)) for k, v in data.items()}


def load_kernel_config(path: Path | None = None,
                       environ: Mapping[str, str] | None = None) -> KernelConfig:
    """Defaults, then the config file, then environment variables (non-empty ones).

    ``environ`` is the environment the kernel runs with (the provisioner passes the one it
    launches the kernel with); its WORKBENCH_HOME locates the file.
    """
    env = os.environ if environ is None else environ
    values = _from_file(path or config_path(env))
    for name, (_kind, variable, _meaning) in SETTINGS.items():
        if env.get(variable, "") != "":
            values[name] = _coerce(name, env[variable], f"${variable}")
    return replace(KernelConfig(), **values)


def write_kernel_config(path: Path, **values: Any) -> Path:
    """Write a kernel.toml with ``values`` (used by the demo and tests)."""
    unknown = sorted(set(values) - {f.name for f in fields(KernelConfig)})
    if unknown:
        raise InputError(f"unknown kernel setting(s): {', '.join(unknown)}")
    lines = []
    for name, value in values.items():
        if isinstance(value, bool):
            lines.append(f"{name} = {'true' if value else 'false'}")
        elif isinstance(value, int | float):
            lines.append(f"{name} = {value}")
        else:
            text = str(value).replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'{name} = "{text}"')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def describe_settings() -> list[tuple[str, str, str, Any]]:
    defaults = KernelConfig()
    return [(name, variable, meaning, getattr(defaults, name))
            for name, (_, variable, meaning) in SETTINGS.items()]
