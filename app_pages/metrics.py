"""Metrics: the selected model's held-out test results from its card, and a comparison of all models."""
import pandas as pd
import streamlit as st

from ui import atrophy_view, catalogue, figures, page, text
from ui import metrics_support as ms
from ui.gallery import misclassified_gallery

page.page_header("Metrics", "Each model's results as recorded in its card: new patients (subject-level "
                          "cross-validation), another cohort (external validation) and the literature's test split. "
                          "Confidence intervals are 95% percentile bootstrap intervals over subjects (scans for test/).")
models = catalogue.list_models()
if not models:
    page.no_models_message()
    st.stop()
by_key = {m.key: m for m in models}
current = page.current_model()
key = st.selectbox("Model", list(by_key), index=list(by_key).index(current.key), format_func=lambda k: by_key[k].name,
                   key=f"metrics_model_{current.key}", help="Defaults to the model chosen in the sidebar.")
entry = by_key[key]
card = entry.card
result, origin = ms.test_result(entry)

st.subheader("Three numbers")
st.dataframe(ms.three_numbers(card), hide_index=True)
st.caption("What a new patient can expect is the first row (and the second, for another scanner and pipeline). "
           "The test split holds other slices of subjects the model was trained on, so it rewards recognising "
           "them; it is the number published work quotes.")

if result is None:
    st.info(f"The card of {text.esc(entry.name)} holds no test metrics (the model was trained without test data).")
else:
    if origin != "card":
        st.caption("Metrics recomputed from the model's predictions file (the card holds none).")
    st.subheader("Literature test split in detail")
    st.caption(f"{result.get('n_slices', '?')} slices from {result.get('n_scans', '?')} scans.")
    for level in ("slice", "scan"):
        cols = st.columns(3)
        for col, (label, metric) in zip(cols, ms.HEADLINE):
            value = (result.get(level) or {}).get(metric)
            ci = ((result.get("ci") or {}).get(level) or {}).get(metric)
            col.metric(f"{label} ({level} level)", text.fmt(value), border=True,
                       help="95% CI: " + text.fmt_ci(ci))
            col.caption(f"95% CI {text.fmt_ci(ci)}")
    page.show_table(ms.headline_table(result))

    st.subheader("Confusion matrix")
    c1, c2 = st.columns(2)
    level = c1.radio("Level", ["slice", "scan"], horizontal=True, key="metrics_cm_level")
    mode = c2.radio("Values", ["counts", "normalised (by true class)"], horizontal=True, key="metrics_cm_mode")
    normalized = mode != "counts"
    names = result.get("class_names") or card.class_names
    matrix = (result.get(level) or {}).get("confusion_matrix_normalized" if normalized else "confusion_matrix")
    if matrix:
        st.plotly_chart(figures.confusion_heatmap(matrix, names, normalized,
                                                  f"Confusion matrix ({level} level; rows = true class)"),
                        key="metrics_cm")

    st.subheader("Per class (slice level)")
    page.show_table(ms.per_class_table(result))
    binary = ms.binary_table(result)
    if binary is not None:
        st.subheader("Two-class operating point (slice level)")
        st.dataframe(binary, hide_index=True)

    left, right = st.columns(2)
    with left:
        if result.get("roc"):
            st.plotly_chart(figures.roc_curves(result["roc"]), key="metrics_roc")
    with right:
        calibration = result.get("calibration") or {}
        if calibration.get("bins"):
            st.plotly_chart(figures.reliability_diagram(calibration["bins"], calibration.get("ece")),
                            key="metrics_reliability")
            st.caption("Bars: accuracy of the slices whose top probability falls in each bin; "
                       "a calibrated model's bars follow the diagonal.")

st.subheader("Training")
history = (card.training and card.training.history) or []
folds = ms.fold_table(card)
if folds is not None:
    st.caption(f"This model is an ensemble of {len(folds)} fold models from subject-level cross-validation; "
               "each fold model was trained on the other folds' subjects, with early stopping on an inner "
               "validation split. How each fold was trained:")
    page.show_table(folds)
elif history:
    best = card.training.best_epoch
    for keys, title, log_y, fig_key in (
        (("train_loss", "val_loss"), "Loss", False, "hist_loss"),
        (("val_accuracy", "val_balanced_accuracy", "val_macro_f1", "val_auc"), "Validation metrics", False, "hist_val"),
        (("lr",), "Learning rate", True, "hist_lr"),
    ):
        fig = figures.history_figure(history, keys, title, best, log_y)
        if fig is not None:
            st.plotly_chart(fig, key=fig_key)
else:
    st.caption("The card records no training history.")
page.show_table(ms.training_table(card))

st.subheader("Evaluation data")
test_data = card.metrics_for("test_data")
if test_data:
    st.dataframe(pd.DataFrame({"field": list(test_data), "value": [str(v) for v in test_data.values()]}),
                 hide_index=True)
else:
    st.caption("The card names no test data.")

faithfulness, cam = card.faithfulness, card.cam
if faithfulness or cam:
    st.subheader("Heatmap faithfulness")
if cam:
    st.write(text.esc(ms.cam_choice_text(cam)))
    candidates = ms.cam_candidates_table(cam)
    if candidates is not None:
        page.show_table(candidates)
if faithfulness:
    if cam:
        st.caption("Below: the Grad-CAM-family checks of the card's `faithfulness` section (on test slices).")
    if ms.faithfulness_text(faithfulness):
        st.write(text.esc(ms.faithfulness_text(faithfulness)))
    table = ms.faithfulness_table(faithfulness)
    if table is not None:
        page.show_table(table)
        st.caption("Drops are in probability of the predicted class. A faithful heatmap removes more confidence "
                   "when its hottest areas go (first columns) than a random map does, and changes when the "
                   "model's weights are randomised (a low last column).")
bench = card.bench
if bench:
    st.subheader("Speed benchmark")
    page.show_table(ms.bench_table(bench))

atrophy_view.auc_section()

st.subheader("Misclassified test slices")
misclassified_gallery(entry)

st.subheader("All models")
page.show_table(ms.models_table(models, getattr(catalogue.default_model(catalogue.clinical_models()), "key", None)))
st.caption("Test figures are slice level. A two-class model's macro-F1 is not comparable with a four-stage "
           "model's. A model trained with a random (leaky) validation split has inflated validation scores; "
           "its test figures still come from the untouched test set.")
