"""Scale-out: a Dask distributed cluster whose workers attest before they get a key.

``wb.cluster(n_workers=..., runtime=...)`` (``cluster.api``) makes the kernel the cluster's
certificate authority (``ca``), starts a scheduler and worker processes under the kernel's
runtime (``launch``), and issues a worker its TLS certificate only after the worker has
attested to the data owner's broker with its own ephemeral key and the broker's token says
the policy passed (``enroll``). Every link is mutual TLS 1.3 under that CA (``tls``).
``wb.scan_dataset(..., engine="dask")`` and ``model.predict`` over it send each worker the
coordinates of sealed row groups; the worker fetches its own keys, decrypts and scores, and
returns only result columns (``scan``, ``tasks``). docs/cluster.md tells the whole story.
"""
