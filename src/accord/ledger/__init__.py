"""The ledger: an append-only Merkle log (RFC 9162) of every decision and release.

* :mod:`~accord.ledger.merkle`: the tree maths, pure.
* :mod:`~accord.ledger.entries`: what is recorded, and its canonical JSON.
* :mod:`~accord.ledger.log`: :class:`~accord.ledger.log.Ledger`, the stored log.
* :mod:`~accord.ledger.checkpoint`: signed tree heads (C2SP signed notes).
* :mod:`~accord.ledger.shred`: per-person keys and erasure by crypto-shredding.
* :mod:`~accord.ledger.audit`: verifying a stored ledger from its leaves.
* :mod:`~accord.ledger.cli`: ``accord ledger``; :mod:`~accord.ledger.verify_proof`: a standalone
  checker of proofs.
"""
