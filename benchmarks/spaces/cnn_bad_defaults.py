"""The cnn space (search_spaces/cnn.py) with poor defaults: Nesterov SGD at a learning rate of 0.002 (the cnn
space's own defaults are Adam at 1e-3; its SGD default is 0.05), everything else as in the cnn space. For
``benchmarks/search_value.py``'s ``search_value_bad``: a sampler that trusts the prior too much stays near a bad
configuration; a good one recovers. Same hyperparameters and ranges, so every configuration is a cnn one."""

from search_spaces import cnn

BAD_OPTIMIZER = "sgd"
BAD_SGD_LEARNING_RATE = 2e-3

fit = cnn.fit


def build_model(hp):
    """The cnn model; on the first build (an empty ``hp``) the optimizer and its rate are registered first, with
    the poor defaults (Keras Tuner keeps the first registration of a name)."""
    if "optimizer" not in hp.values:
        hp.Choice("optimizer", ["adam", "adamw", "sgd"], default=BAD_OPTIMIZER)
        with hp.conditional_scope("optimizer", ["sgd"]):
            hp.Float("sgd_learning_rate", 1e-3, 2e-1, sampling="log", default=BAD_SGD_LEARNING_RATE)
    return cnn.build_model(hp)
