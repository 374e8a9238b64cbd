"""The retrain-best report: test-set metrics, figures and the HTML / Markdown pages, on plain arrays.

Nothing here imports Keras. :mod:`.metrics` computes (accuracy with its Wilson interval, F1, loss,
confusion), :mod:`.figures` draws the PNGs of one model, :mod:`.pages` writes ``report.html`` (through
:mod:`fashion_tuner.html_page`, shared with the review page) and ``report.md``. The names below are the
package's API, what ``retrain`` and the tests use.
"""

from fashion_tuner.report.figures import (FIGURES, plot_confusion_matrix, plot_learning_curves,
                                          plot_misclassified, plot_per_class_accuracy, write_model_figures)
from fashion_tuner.report.metrics import (CI_HEADER, REPORT_CSV_COLUMNS, accuracy_ci, array_sha256,
                                          best_epoch, classification_table, confident_mistakes, confusion,
                                          cross_entropy, evaluate_probs, most_confused_pairs, per_class_accuracy)
from fashion_tuner.report.pages import (fmt_number, leaderboard_rows, md_table, model_rows, sideways,
                                        summary_row, write_report_pages)
from fashion_tuner.html_page import png_data_uri

__all__ = ["FIGURES", "plot_confusion_matrix", "plot_learning_curves", "plot_misclassified", "plot_per_class_accuracy",
           "write_model_figures", "CI_HEADER", "REPORT_CSV_COLUMNS", "accuracy_ci", "array_sha256", "best_epoch",
           "classification_table", "confident_mistakes", "confusion", "cross_entropy", "evaluate_probs",
           "most_confused_pairs", "per_class_accuracy", "fmt_number", "leaderboard_rows", "md_table", "model_rows",
           "sideways", "summary_row", "write_report_pages", "png_data_uri"]
