"""Keras interop (placeholder until written)."""


def from_keras(*a, **k):
    raise NotImplementedError


def to_keras(*a, **k):
    raise NotImplementedError


def keras_weights(*a, **k):
    raise NotImplementedError
