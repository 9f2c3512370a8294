"""The data owner's publish: seal an asset, register its keys, list it in the catalog.

``workbench publish table|model`` (:mod:`.commands`) and ``workbench catalog`` (
:mod:`.catalog_commands`) are the owner's commands; :func:`.core.publish` is the one
transaction behind them (and behind the demo's hospital). It seals into the data directory,
registers each key with the key broker straight from the keyring (the key is never written
to a file), and adds the catalog entry. Publishing the same content again changes nothing;
keys change only with ``rotate``. A failure undoes what was done, in reverse: a key
registered for a file that was never put in place is deleted from the broker again, a
sealed file whose keys did not register is removed, and the previous file, keys and keyring
come back.

Asset kinds are rows of :data:`.kinds.ASSET_KINDS`.
"""
