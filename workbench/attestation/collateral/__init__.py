"""Intel and AMD collateral fetched from PCS/KDS-compatible services, cached on disk.

``pcs`` and ``kds`` say which requests exist (paths, queries, response headers);
``sources`` tries the configured base URLs in order; ``cache`` keeps each response on disk
until its own nextUpdate, shared by processes; ``refresh`` renews entries ahead of expiry;
``service`` assembles what the verifiers take. The verifiers check every signature: this
package only fetches, stores and refuses what it cannot get or what has expired.
"""
