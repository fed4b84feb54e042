"""What mask a Keras 3 layer passes on when called eagerly on an input carrying one."""

import numpy as np


def keras_output_mask(layer, x, mask, **call_kwargs):
    """The mask Keras attaches to ``layer(x)`` when ``x`` carries ``mask`` (None when it drops it).

    Where the layer returns its very input (a reshape to the same shape), eager Keras leaves the
    input's mask on it; in a model Keras's rule applies (no mask unless ``supports_masking``), and
    that rule is what is returned then."""
    import warnings

    from keras.src import backend

    x = backend.convert_to_tensor(x)
    backend.set_keras_mask(x, backend.convert_to_tensor(mask))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "does not support masking and will therefore destroy the mask"
        y = layer(x, **call_kwargs)
    if y is x and not layer.supports_masking:
        return None
    out = backend.get_keras_mask(y)
    return None if out is None else np.asarray(out)
