"""JupyterHub for the Confidential Workbench: JupyterLab servers whose kernels attest.

Run it with ``jupyterhub -f deploy/jupyterhub/jupyterhub_config.py`` from the environment the
workbench is installed in (``make install``). Everything is set through environment
variables (the ``SETTINGS`` table below; docs/deploy.md explains each one), so the same file
serves a laptop and a server:

- ``WORKBENCH_HUB_MODE=local`` (the default): loopback only, the dummy authenticator (any
  password), ``SimpleLocalProcessSpawner`` (every user is this Unix user, homes under
  ``WORKBENCH_HUB_USERS_DIR``), simulation allowed if the environment allows it.
- ``WORKBENCH_HUB_MODE=production``: you name a real authenticator and spawner, give TLS (or
  say a TLS proxy terminates in front), and an ``https`` broker; test authenticators, the
  simple spawner and the simulated TEE are refused with the reason.

Every single-user server runs JupyterLab with the workbench's server extension (enabled by
the package's ``jupyter_server_config.d`` file) and the Confidential Python kernelspec as
the default kernel; the broker's URL (and, optionally, where its token-signing keys are
published or pinned) reaches the server and its kernels through the environment, with an
identify-only hub token the broker resolves at this hub's API (the broker's ``hub_api_url``:
``http://127.0.0.1:$WORKBENCH_HUB_INTERNAL_PORT/hub/api``) for per-user release rules.
"""

# ``c`` and ``get_config`` are provided by traitlets when JupyterHub loads this file.
# ruff: noqa: F821

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
LOCAL, PRODUCTION = "local", "production"
KERNEL_NAME = "confidential-python"
# configurable-http-proxy as `make install` puts it (npm ci in deploy/jupyterhub).
LOCAL_PROXY = HERE / "node_modules" / ".bin" / "configurable-http-proxy"

# variable -> (local default, production default (None: required), meaning)
SETTINGS: dict[str, tuple[str, str | None, str]] = {
    "WORKBENCH_HUB_MODE": (LOCAL, PRODUCTION, "local or production"),
    "WORKBENCH_HUB_IP": ("127.0.0.1", "0.0.0.0", "address of the public proxy"),  # noqa: S104
    "WORKBENCH_HUB_PORT": ("8000", "443", "port of the public proxy"),
    "WORKBENCH_HUB_INTERNAL_PORT": ("8081", "8081", "port of the hub's own API (loopback)"),
    "WORKBENCH_HUB_PROXY_API_PORT": ("8001", "8001",
                                     "port of the proxy's REST API (loopback)"),
    "WORKBENCH_HUB_STATE_DIR": (".", "/srv/jupyterhub",
                                "hub database, cookie secret and proxy pid file"),
    "WORKBENCH_HUB_USERS_DIR": ("/tmp/workbench-hub-users", "",  # noqa: S108
                                "local mode: users' home directories ({dir}/{username})"),
    "WORKBENCH_HUB_AUTHENTICATOR": ("dummy", None,
                                    "authenticator (entry point name or class)"),
    "WORKBENCH_HUB_SPAWNER": ("simple", None, "spawner (entry point name or class)"),
    "WORKBENCH_HUB_SSL_CERT": ("", "", "TLS certificate of the public proxy"),
    "WORKBENCH_HUB_SSL_KEY": ("", "", "TLS key of the public proxy"),
    "WORKBENCH_HUB_TLS_TERMINATED": ("", "",
                                     "1: a reverse proxy in front terminates TLS"),
    "WORKBENCH_HUB_API_TOKEN": ("", "",
                                "token of the 'workbench-admin' service (user and server "
                                "management through the REST API); none: no service"),
    "WORKBENCH_HUB_ADMIN_USERS": ("", "", "comma-separated hub admin users"),
    "WORKBENCH_HUB_KERNELS": ("", KERNEL_NAME,
                              "comma-separated kernelspecs users may start (empty: all)"),
    "WORKBENCH_HUB_WALKTHROUGH": (str(ROOT / "notebooks" / "healthcare-demo.ipynb"), "",
                                  "local mode: notebook copied into each new home"),
    "WORKBENCH_HUB_START_TIMEOUT_S": ("120", "300",
                                      "seconds a single-user server may take to start"),
}
# Passed from the hub's environment to every single-user server (and its kernels).
FORWARDED: dict[str, str] = {
    "WORKBENCH_KBS_URL": "the data owner's key broker (kernels and the server extension)",
    "WORKBENCH_KBS_JWKS_URL": "where the broker publishes its token-signing keys "
                              "(default: the broker URL + /.well-known/jwks.json)",
    "WORKBENCH_KBS_PUBLIC_KEYS": "comma-separated files pinning the broker's token keys "
                                 "(then nothing is fetched)",
    "WORKBENCH_COLLATERAL_PCS_URLS": "comma-separated PCS v4-compatible services (a PCCS or "
                                     "Azure's THIM, then Intel PCS) the server extension "
                                     "fetches Intel collateral from",
    "WORKBENCH_COLLATERAL_KDS_URLS": "comma-separated AMD KDS-compatible services (VCEKs, "
                                     "AMD CRLs)",
    "WORKBENCH_DATA_DIR": "catalog.json and the sealed files",
    "WORKBENCH_HOME": "the workbench's state directory (kernel.toml, simulated-TEE key)",
    "WORKBENCH_KERNEL_RUNTIME": "auto, gramine-sgx, cvm or simulated",
    "WORKBENCH_ALLOW_SIMULATION": "local mode only: let 'auto' use the simulated TEE",
}
TEST_AUTHENTICATORS = frozenset({"dummy", "null", "shared-password",
                                 "jupyterhub.auth.DummyAuthenticator"})
TEST_SPAWNERS = frozenset({"simple", "jupyterhub.spawner.SimpleLocalProcessSpawner"})
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


class HubConfigError(SystemExit):
    """One line naming the setting and the cause; JupyterHub exits with it."""

    def __init__(self, message: str) -> None:
        super().__init__(f"jupyterhub_config.py: {message}")


def setting(name: str, environ: dict[str, str], mode: str) -> str:
    local, production, _meaning = SETTINGS[name]
    value = environ.get(name, "")
    if value:
        return value
    default = local if mode == LOCAL else production
    if default is None:
        raise HubConfigError(f"{name} must be set in production mode "
                             f"({SETTINGS[name][2]}; see docs/deploy.md)")
    return default


def hub_mode(environ: dict[str, str]) -> str:
    mode = environ.get("WORKBENCH_HUB_MODE", LOCAL) or LOCAL
    if mode not in (LOCAL, PRODUCTION):
        raise HubConfigError(f"WORKBENCH_HUB_MODE must be '{LOCAL}' or '{PRODUCTION}', "
                             f"not '{mode}'")
    return mode


def port(name: str, environ: dict[str, str], mode: str) -> int:
    text = setting(name, environ, mode)
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise HubConfigError(f"{name} must be a TCP port number, not '{text}'")
    return int(text)


def production_refusals(environ: dict[str, str]) -> list[str]:
    """What makes this environment unfit for production, one reason per problem."""
    mode = PRODUCTION
    problems = []
    if setting("WORKBENCH_HUB_AUTHENTICATOR", environ, mode) in TEST_AUTHENTICATORS:
        problems.append("WORKBENCH_HUB_AUTHENTICATOR names a test authenticator (anyone "
                        "could log in): use your identity provider's (e.g. generic-oauth)")
    if setting("WORKBENCH_HUB_SPAWNER", environ, mode) in TEST_SPAWNERS:
        problems.append("WORKBENCH_HUB_SPAWNER is the simple spawner (no isolation between "
                        "users): use e.g. systemd, docker or kubespawner")
    has_tls = bool(environ.get("WORKBENCH_HUB_SSL_CERT") and environ.get("WORKBENCH_HUB_SSL_KEY"))
    terminated = environ.get("WORKBENCH_HUB_TLS_TERMINATED", "").lower() in TRUE_WORDS
    if not has_tls and not terminated:
        problems.append("no TLS: set WORKBENCH_HUB_SSL_CERT and WORKBENCH_HUB_SSL_KEY, or "
                        "WORKBENCH_HUB_TLS_TERMINATED=1 behind a TLS-terminating proxy")
    if environ.get("WORKBENCH_ALLOW_SIMULATION", "").lower() in TRUE_WORDS:
        problems.append("WORKBENCH_ALLOW_SIMULATION is set: a simulated TEE protects nothing "
                        "from the operator; production kernels run on TEE hardware")
    broker = environ.get("WORKBENCH_KBS_URL", "")
    if not broker.startswith("https://"):
        problems.append(f"WORKBENCH_KBS_URL must be the broker's https:// URL, not "
                        f"'{broker or '(unset)'}' (put TLS in front of it: docs/kbs.md)")
    return problems


def server_environment(environ: dict[str, str], mode: str) -> dict[str, object]:
    from workbench.brokerclient.identity import IDENTITY_ENV, hub_identity_token

    env: dict[str, object] = {name: environ[name] for name in FORWARDED if environ.get(name)}
    if mode == PRODUCTION:
        env.pop("WORKBENCH_ALLOW_SIMULATION", None)
    env.update(kernelspec_search_path(environ))
    # Who the analyst is, for the broker's per-user release rules: a token the hub mints at
    # each start with no scopes (it identifies its owner to GET /hub/api/user and can do
    # nothing else); kernels inherit it from the server and send it to the broker.
    env[IDENTITY_ENV] = hub_identity_token
    return env


def kernelspec_search_path(environ: dict[str, str]) -> dict[str, str]:
    """JUPYTER_PATH naming the source tree when the kernelspec is not installed."""
    if (Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json"
            ).is_file():
        return {}
    if not (ROOT / "kernels" / KERNEL_NAME / "kernel.json").is_file():
        raise HubConfigError(f"the {KERNEL_NAME} kernelspec is neither installed in "
                             f"{sys.prefix} nor in {ROOT / 'kernels'}: run `make install`")
    existing = environ.get("JUPYTER_PATH")
    return {"JUPYTER_PATH": os.pathsep.join(p for p in (str(ROOT), existing) if p)}


def server_args(environ: dict[str, str], mode: str) -> list[str]:
    args = [f"--MappingKernelManager.default_kernel_name={KERNEL_NAME}",
            # A confidential workbench does not phone home for updates or news.
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    kernels = [k for k in setting("WORKBENCH_HUB_KERNELS", environ, mode).split(",") if k]
    if kernels:
        args.append(f"--KernelSpecManager.allowed_kernelspecs={kernels!r}")
    if environ.get("WORKBENCH_KBS_JWKS_URL"):
        args.append(f"--WorkbenchLab.broker_jwks_url={environ['WORKBENCH_KBS_JWKS_URL']}")
    pinned = [p for p in environ.get("WORKBENCH_KBS_PUBLIC_KEYS", "").split(",") if p]
    if pinned:
        args.append(f"--WorkbenchLab.broker_public_keys={pinned!r}")
    if mode == LOCAL and os.geteuid() == 0:
        # Containers often run as root; the single-user server refuses that unless told.
        args.append("--allow-root")
    return args


def proxy_command() -> list[str]:
    if LOCAL_PROXY.is_file():
        return [str(LOCAL_PROXY)]
    found = shutil.which("configurable-http-proxy")
    if found is None:
        raise HubConfigError(f"configurable-http-proxy not found ({LOCAL_PROXY} missing, "
                             "none on PATH): run `make install` (npm ci in deploy/jupyterhub)")
    return [found]


def seed_walkthrough(notebook: str):
    """A pre-spawn hook copying the walkthrough into a new user's home (local mode)."""
    def hook(spawner) -> None:
        home = Path(spawner.home_dir)
        home.mkdir(parents=True, exist_ok=True)
        target = home / Path(notebook).name
        if not target.exists():
            shutil.copy2(notebook, target)
    return hook


def configure(c, environ: dict[str, str]) -> None:
    mode = hub_mode(environ)
    if mode == PRODUCTION:
        problems = production_refusals(environ)
        if problems:
            raise HubConfigError("not fit for production: " + "; ".join(problems))
    state = Path(setting("WORKBENCH_HUB_STATE_DIR", environ, mode)).resolve()
    state.mkdir(parents=True, exist_ok=True)
    ip = setting("WORKBENCH_HUB_IP", environ, mode)
    scheme = "https" if environ.get("WORKBENCH_HUB_SSL_CERT") else "http"
    c.JupyterHub.bind_url = f"{scheme}://{ip}:{port('WORKBENCH_HUB_PORT', environ, mode)}/"
    c.JupyterHub.hub_bind_url = \
        f"http://127.0.0.1:{port('WORKBENCH_HUB_INTERNAL_PORT', environ, mode)}"
    c.ConfigurableHTTPProxy.api_url = \
        f"http://127.0.0.1:{port('WORKBENCH_HUB_PROXY_API_PORT', environ, mode)}"
    c.ConfigurableHTTPProxy.command = proxy_command()
    c.ConfigurableHTTPProxy.pid_file = str(state / "jupyterhub-proxy.pid")
    c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    if environ.get("WORKBENCH_HUB_SSL_CERT"):
        c.JupyterHub.ssl_cert = environ["WORKBENCH_HUB_SSL_CERT"]
        c.JupyterHub.ssl_key = environ.get("WORKBENCH_HUB_SSL_KEY", "")

    c.JupyterHub.authenticator_class = setting("WORKBENCH_HUB_AUTHENTICATOR", environ, mode)
    admins = {u for u in environ.get("WORKBENCH_HUB_ADMIN_USERS", "").split(",") if u}
    if admins:
        c.Authenticator.admin_users = admins
    c.JupyterHub.spawner_class = setting("WORKBENCH_HUB_SPAWNER", environ, mode)
    if mode == LOCAL:
        users = Path(setting("WORKBENCH_HUB_USERS_DIR", environ, mode)).resolve()
        c.SimpleLocalProcessSpawner.home_dir_template = str(users / "{username}")
        walkthrough = setting("WORKBENCH_HUB_WALKTHROUGH", environ, mode)
        if walkthrough and Path(walkthrough).is_file():
            c.Spawner.pre_spawn_hook = seed_walkthrough(walkthrough)

    # The single-user server: this environment's Python, JupyterLab, the workbench.
    c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
    c.Spawner.default_url = "/lab"
    c.Spawner.environment = server_environment(environ, mode)
    c.Spawner.args = server_args(environ, mode)
    timeout = int(setting("WORKBENCH_HUB_START_TIMEOUT_S", environ, mode))
    c.Spawner.start_timeout = timeout
    c.Spawner.http_timeout = timeout

    token = environ.get("WORKBENCH_HUB_API_TOKEN", "")
    if token:
        c.JupyterHub.services = [{"name": "workbench-admin", "api_token": token}]
        c.JupyterHub.load_roles = [{
            "name": "workbench-admin",
            "description": "create users, start and stop their servers, issue their tokens",
            "scopes": ["admin:users", "admin:servers", "tokens", "list:users", "read:users"],
            "services": ["workbench-admin"],
        }]


if "get_config" in globals():
    configure(get_config(), dict(os.environ))
