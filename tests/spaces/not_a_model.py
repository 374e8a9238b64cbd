"""A test space whose build_model returns something that is not a Keras model."""


def build_model(hp):
    hp.Int("units", 8, 32)
    return {"units": hp.get("units")}
