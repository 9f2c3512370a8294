"""deploy/jupyterhub/jupyterhub_config.py: what each environment produces, and every reason
it refuses to configure a hub (one line naming the setting and the cause)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "jupyterhub" / "jupyterhub_config.py"


@pytest.fixture
def hubconf():
    spec = importlib.util.spec_from_file_location("workbench_jupyterhub_config", CONFIG)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def local_env(tmp_path: Path) -> dict[str, str]:
    return {"WORKBENCH_HUB_STATE_DIR": str(tmp_path / "state"),
            "WORKBENCH_HUB_USERS_DIR": str(tmp_path / "users"),
            "WORKBENCH_KBS_URL": "http://127.0.0.1:8080"}


@pytest.fixture
def production_env(tmp_path: Path) -> dict[str, str]:
    return {"WORKBENCH_HUB_MODE": "production",
            "WORKBENCH_HUB_STATE_DIR": str(tmp_path / "state"),
            "WORKBENCH_HUB_AUTHENTICATOR": "generic-oauth",
            "WORKBENCH_HUB_SPAWNER": "systemd",
            "WORKBENCH_HUB_SSL_CERT": "/etc/ssl/hub.pem",
            "WORKBENCH_HUB_SSL_KEY": "/etc/ssl/hub.key",
            "WORKBENCH_KBS_URL": "https://broker.hospital.example"}


def configured(hubconf, env: dict[str, str]) -> Config:
    c = Config()
    hubconf.configure(c, env)
    return c


def test_local_mode_is_loopback_with_test_authenticator_and_simple_spawner(hubconf, local_env,
                                                                            tmp_path):
    c = configured(hubconf, local_env)
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8000/"
    assert c.JupyterHub.hub_bind_url.startswith("http://127.0.0.1:")
    assert c.ConfigurableHTTPProxy.api_url.startswith("http://127.0.0.1:")
    assert c.JupyterHub.authenticator_class == "dummy"
    assert c.JupyterHub.spawner_class == "simple"
    assert c.SimpleLocalProcessSpawner.home_dir_template == str(tmp_path / "users" /
                                                                "{username}")
    assert c.JupyterHub.db_url == f"sqlite:///{tmp_path / 'state' / 'jupyterhub.sqlite'}"
    assert (tmp_path / "state").is_dir()
    assert c.ConfigurableHTTPProxy.command == [str(hubconf.LOCAL_PROXY)]
    assert c.Spawner.cmd == [sys.executable, "-m", "jupyterhub.singleuser"]
    assert c.Spawner.default_url == "/lab"
    assert "--MappingKernelManager.default_kernel_name=confidential-python" in c.Spawner.args
    assert "services" not in c.JupyterHub  # no admin service without its token


def test_the_broker_and_workbench_settings_reach_single_user_servers(hubconf, local_env):
    env = {**local_env, "WORKBENCH_DATA_DIR": "/srv/data", "WORKBENCH_HOME": "/srv/wb",
           "WORKBENCH_KBS_JWKS_URL": "http://127.0.0.1:8080/.well-known/jwks.json",
           "WORKBENCH_KBS_PUBLIC_KEYS": "/etc/wb/broker.jwk,/etc/wb/next.jwk",
           "WORKBENCH_AUTO_APPROVE": "1", "UNRELATED": "x"}
    c = configured(hubconf, env)
    forwarded = c.Spawner.environment
    assert forwarded["WORKBENCH_KBS_URL"] == "http://127.0.0.1:8080"
    assert forwarded["WORKBENCH_DATA_DIR"] == "/srv/data"
    assert forwarded["WORKBENCH_HOME"] == "/srv/wb"
    # The analyst's approval is never decided by the hub's environment.
    assert "WORKBENCH_AUTO_APPROVE" not in forwarded and "UNRELATED" not in forwarded
    # Who the analyst is: an identify-only token the hub mints per server start.
    from workbench.brokerclient.identity import IDENTITY_ENV, hub_identity_token

    assert forwarded[IDENTITY_ENV] is hub_identity_token
    assert ("--WorkbenchLab.broker_jwks_url=http://127.0.0.1:8080/.well-known/jwks.json"
            in c.Spawner.args)
    assert ("--WorkbenchLab.broker_public_keys=['/etc/wb/broker.jwk', '/etc/wb/next.jwk']"
            in c.Spawner.args)


def test_the_admin_service_gets_user_and_server_scopes_only(hubconf, local_env):
    c = configured(hubconf, {**local_env, "WORKBENCH_HUB_API_TOKEN": "t" * 64})
    assert c.JupyterHub.services == [{"name": "workbench-admin", "api_token": "t" * 64}]
    (role,) = c.JupyterHub.load_roles
    assert role["services"] == ["workbench-admin"]
    assert "admin:users" in role["scopes"] and "admin:servers" in role["scopes"]
    assert not any(scope.startswith("access:servers") for scope in role["scopes"])


def test_production_with_real_components(hubconf, production_env):
    c = configured(hubconf, production_env)
    assert c.JupyterHub.bind_url == "https://0.0.0.0:443/"
    assert c.JupyterHub.ssl_cert == "/etc/ssl/hub.pem"
    assert c.JupyterHub.authenticator_class == "generic-oauth"
    assert c.JupyterHub.spawner_class == "systemd"
    assert "--KernelSpecManager.allowed_kernelspecs=['confidential-python']" in c.Spawner.args
    assert "--allow-root" not in c.Spawner.args
    assert "pre_spawn_hook" not in c.Spawner


def test_production_behind_a_tls_proxy(hubconf, production_env):
    env = {k: v for k, v in production_env.items() if "SSL" not in k}
    c = configured(hubconf, {**env, "WORKBENCH_HUB_TLS_TERMINATED": "1",
                             "WORKBENCH_HUB_IP": "127.0.0.1", "WORKBENCH_HUB_PORT": "8000",
                             "WORKBENCH_ALLOW_SIMULATION": "0"})
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8000/"
    assert "WORKBENCH_ALLOW_SIMULATION" not in c.Spawner.environment


@pytest.mark.parametrize(("change", "reason"), [
    ({"WORKBENCH_HUB_AUTHENTICATOR": "dummy"},
     "WORKBENCH_HUB_AUTHENTICATOR names a test authenticator"),
    ({"WORKBENCH_HUB_AUTHENTICATOR": "shared-password"},
     "WORKBENCH_HUB_AUTHENTICATOR names a test authenticator"),
    ({"WORKBENCH_HUB_SPAWNER": "simple"}, "WORKBENCH_HUB_SPAWNER is the simple spawner"),
    ({"WORKBENCH_HUB_SSL_KEY": ""}, "no TLS: set WORKBENCH_HUB_SSL_CERT and"),
    ({"WORKBENCH_ALLOW_SIMULATION": "1"}, "WORKBENCH_ALLOW_SIMULATION is set"),
    ({"WORKBENCH_KBS_URL": "http://broker:8080"},
     "WORKBENCH_KBS_URL must be the broker's https:// URL, not 'http://broker:8080'"),
    ({"WORKBENCH_KBS_URL": ""}, "WORKBENCH_KBS_URL must be the broker's https:// URL, not "
                                "'(unset)'"),
])
def test_production_refuses_what_is_not_fit_for_it(hubconf, production_env, change, reason):
    with pytest.raises(SystemExit) as refused:
        configured(hubconf, {**production_env, **change})
    message = str(refused.value)
    assert message.startswith("jupyterhub_config.py: not fit for production: ")
    assert reason in message


def test_production_names_every_problem_at_once(hubconf, tmp_path):
    with pytest.raises(SystemExit) as refused:
        configured(hubconf, {"WORKBENCH_HUB_MODE": "production",
                             "WORKBENCH_HUB_AUTHENTICATOR": "dummy",
                             "WORKBENCH_HUB_SPAWNER": "simple",
                             "WORKBENCH_HUB_STATE_DIR": str(tmp_path)})
    assert str(refused.value).count(";") == 3  # authenticator, spawner, TLS, broker


@pytest.mark.parametrize("missing", ["WORKBENCH_HUB_AUTHENTICATOR", "WORKBENCH_HUB_SPAWNER"])
def test_production_requires_naming_the_components(hubconf, production_env, missing):
    with pytest.raises(SystemExit) as refused:
        configured(hubconf, {k: v for k, v in production_env.items() if k != missing})
    assert str(refused.value) == (f"jupyterhub_config.py: {missing} must be set in production "
                                  f"mode ({hubconf.SETTINGS[missing][2]}; see docs/deploy.md)")


@pytest.mark.parametrize(("change", "reason"), [
    ({"WORKBENCH_HUB_MODE": "staging"}, "WORKBENCH_HUB_MODE must be 'local' or 'production', "
                                        "not 'staging'"),
    ({"WORKBENCH_HUB_PORT": "eighty"}, "WORKBENCH_HUB_PORT must be a TCP port number, "
                                       "not 'eighty'"),
    ({"WORKBENCH_HUB_PROXY_API_PORT": "70000"},
     "WORKBENCH_HUB_PROXY_API_PORT must be a TCP port number, not '70000'"),
])
def test_bad_settings_are_named(hubconf, local_env, change, reason):
    with pytest.raises(SystemExit) as refused:
        configured(hubconf, {**local_env, **change})
    assert str(refused.value) == f"jupyterhub_config.py: {reason}"


def test_a_missing_proxy_is_named(hubconf, local_env, tmp_path, monkeypatch):
    monkeypatch.setattr(hubconf, "LOCAL_PROXY", tmp_path / "no-proxy")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SystemExit) as refused:
        configured(hubconf, local_env)
    assert "configurable-http-proxy not found" in str(refused.value)
    assert "make install" in str(refused.value)


def test_a_missing_kernelspec_is_named(hubconf, local_env, tmp_path, monkeypatch):
    monkeypatch.setattr(hubconf, "ROOT", tmp_path)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    with pytest.raises(SystemExit) as refused:
        configured(hubconf, local_env)
    assert "the confidential-python kernelspec is neither installed" in str(refused.value)


def test_an_uninstalled_kernelspec_is_found_in_the_source_tree(hubconf, local_env, tmp_path,
                                                               monkeypatch):
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    c = configured(hubconf, {**local_env, "JUPYTER_PATH": "/opt/jupyter"})
    assert c.Spawner.environment["JUPYTER_PATH"] == f"{ROOT}:/opt/jupyter"


def test_the_walkthrough_is_copied_into_new_homes_only(hubconf, tmp_path):
    hook = hubconf.seed_walkthrough(str(ROOT / "notebooks" / "healthcare-demo.ipynb"))
    home = tmp_path / "alice"
    hook(SimpleNamespace(home_dir=str(home)))
    copied = home / "healthcare-demo.ipynb"
    assert copied.read_bytes() == (ROOT / "notebooks" / "healthcare-demo.ipynb").read_bytes()
    copied.write_text("the analyst's own edits")
    hook(SimpleNamespace(home_dir=str(home)))
    assert copied.read_text() == "the analyst's own edits"


def test_jupyterhub_itself_stops_with_the_one_line_reason(tmp_path):
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path),
           "WORKBENCH_HUB_MODE": "production", "WORKBENCH_HUB_AUTHENTICATOR": "dummy",
           "WORKBENCH_HUB_SPAWNER": "systemd", "WORKBENCH_HUB_TLS_TERMINATED": "1",
           "WORKBENCH_HUB_STATE_DIR": str(tmp_path),
           "WORKBENCH_KBS_URL": "https://broker.hospital.example"}
    done = subprocess.run([sys.executable, "-m", "jupyterhub", "-f", str(CONFIG)], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert ("jupyterhub_config.py: not fit for production: WORKBENCH_HUB_AUTHENTICATOR names "
            "a test authenticator") in done.stderr
