"""fashion_tuner: Keras Tuner searches, honest splits, retraining and reports for image classifiers."""

__version__ = "0.1.0"
