"""Kinds of study: each module defines a ``qkdjax.study.Study`` subclass whose ``name`` a link class returns from
its ``scenario`` classmethod (a link evaluated at one point, a satellite pass, a trusted-node chain)."""
