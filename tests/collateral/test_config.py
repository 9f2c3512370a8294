"""The broker's collateral settings."""

from __future__ import annotations

import json

import pytest

from workbench.errors import InputError
from workbench.kbs.config import load_config


def test_folder_and_service_are_exclusive(tmp_path):
    config = tmp_path / "kbs.json"
    config.write_text(json.dumps({"dcap_collateral_dir": "/srv/collateral",
                                  "collateral_pcs_urls": ["https://pccs.example:8081"]}))
    with pytest.raises(InputError, match="dcap_collateral_dir and the collateral service"):
        load_config(config)


def test_urls_must_be_a_list_of_strings(tmp_path):
    config = tmp_path / "kbs.json"
    config.write_text(json.dumps({"collateral_pcs_urls": "https://pccs.example:8081"}))
    with pytest.raises(InputError, match="'collateral_pcs_urls' must be a list of strings"):
        load_config(config)


def test_service_settings_and_default_cache(tmp_path, _isolated_home):
    config = tmp_path / "kbs.toml"
    config.write_text('collateral_pcs_urls = ["https://pccs.example:8081", '
                      '"https://api.trustedservices.intel.com"]\n')
    loaded = load_config(config)
    assert loaded.collateral_service
    assert loaded.collateral_pcs_urls[0] == "https://pccs.example:8081"
    assert loaded.collateral_cache == str(_isolated_home / "kbs" / "collateral")
    assert not load_config(None).collateral_service
