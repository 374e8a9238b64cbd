"""The cnn space under 100,000 parameters: the small end of the accuracy-against-size trade-off.

The network and every hyperparameter are :mod:`search_spaces.cnn`'s (read its docstring); only the
widths are pinned where the parameters go, so every model the search can build has under 100K
parameters (79,706 for the defaults, 86,634 at most, with two convs in every block, residual
projections and squeeze-and-excitation)::

    augmentation -> Normalization -> conv blocks 16 / 32 / 64 filters, 3x3 -> global average
    -> Dense 64 | 128 -> Dropout -> Dense(num_classes, softmax)

- ``filters_base``: fixed 16 (blocks of 16, 32 and 64 filters).
- ``kernel_size``: fixed 3 (5x5 kernels would be 2.8x the convolution weights).
- ``conv_blocks``: 2 | 3, 3 (a fourth block of 128 filters alone would be ~220K parameters).
- ``head_pooling``: fixed global_avg (flatten would feed 16 x 64 = 1,024 inputs per dense unit).
- ``dense_units``: 64 | 128, 128.

Published anchors for Fashion-MNIST under 100K parameters are about 92.5 % test accuracy.
"""

from __future__ import annotations

import keras

from search_spaces import cnn
from search_spaces.cnn import fit  # noqa: F401  (the engine calls the space's fit: mixing, schedules)

# Same default budget as cnn: 10 Hyperband trials on a stratified 10,000-image subset, then the winner
# trains on all 60,000 images for 30 epochs.
SEARCH_DEFAULTS = {"max_epochs": 6, "subset": 10000, "trial_timeout": 300,
                   "retrain": {"epochs": 30, "train_on": "full", "patience": 5}}

PARAMETER_CAP = 100_000


def build_model(hp) -> keras.Model:
    """Build and compile one CNN of the cnn space with the widths above pinned (under 100K parameters)."""
    hp.Fixed("filters_base", 16)
    hp.Fixed("kernel_size", 3)
    hp.Int("conv_blocks", 2, 3, default=3)
    hp.Fixed("head_pooling", "global_avg")
    hp.Choice("dense_units", [64, 128], default=128)
    return cnn.build_model(hp)
