"""About: what the tool is for, how it was evaluated, its limits, and the model cards."""
import pandas as pd
import streamlit as st

from ui import catalogue, page, text
from ui import metrics_support as ms

page.page_header("About MRI Vision")

st.markdown("""
**What it is.** MRI Vision classifies single axial brain MRI slices into four classes used by a public
data set — NonDemented, VeryMildDemented, MildDemented and ModerateDemented — and shows heatmaps of what
drove the model's output (occlusion sensitivity, Grad-CAM and related methods).

**Intended use.** Research and education: exploring how image classifiers behave on MRI slices, how they
are evaluated, and where they fail. It is not a medical device and must not be used for diagnosis,
screening or treatment decisions. Its outputs are not clinical findings.

**Data.** The models were trained on the public Kaggle "Alzheimer's MRI 4-class" slice data set, using its
original train/test split. The data set contains pre-processed 2-D slices, not full scans, and is strongly
imbalanced (few ModerateDemented slices).

**Evaluation protocol.** Every model card holds three numbers, each with 95% confidence intervals from a
percentile bootstrap over subjects (scans for the test split):
- *New patients*: subject-level K-fold cross-validation over the training folder's pseudo-subjects (slices
  that look like neighbours of one scan are grouped, and no subject is on both sides of a fold). This is
  where models are selected, and it is the number a new patient can expect.
- *Another cohort*: an external validation cohort from OASIS-2 (other subjects, other processing), used to
  check and select, never to train or fit anything.
- *The literature's split*: the data set's original test folder. It holds other slices of subjects whose
  slices are also in the training folder, so it rewards recognising them; it is the number published work
  quotes. It is never used for training, model selection or calibration.
- Metrics are reported per slice and per scan or subject (slice probabilities averaged). Confidence values
  are calibrated with temperature scaling fitted on validation data.

**The leakage lesson.** Accuracies of 95–99% are often quoted for this data set. They come from splitting
the slices at random, which puts neighbouring slices of the *same scan* into both training and test sets:
the model can score well by recognising the scan rather than learning the stage. With scan-aware splits, as here, accuracy is lower,
and a better guide to how the model would do on scans it has never seen.

**Limits.**
- One 2-D slice carries far less information than a full 3-D scan plus clinical context.
- The training data comes from one public collection; other scanners, protocols, orientations and
  pre-processing can make predictions meaningless (the app warns when an input looks unlike the training
  slices, but cannot catch everything).
- The classes are ordered stages: the app shows an expected stage (a probability-weighted severity score)
  with its spread beside the class probabilities; the confusion matrix on the Metrics page shows which
  stages a model mixes up.
- Slices are put into one canonical framing (brain found, cropped, centred, intensities mapped) before a
  model sees them, for models trained that way; a whole scan is staged from the slices at the level the
  models were trained on (the Whole scan page).
- Heatmaps show what influenced the model, which is not the same as where disease is.

**Licences.** The MRI Vision code is released under the MIT licence. The data set and any pretrained
backbone weights keep their own licences and terms of use — check them on their source pages before reuse.
The example slices, if present, are described in `examples/ATTRIBUTION.md`.
""")

st.header("Model cards")
models = catalogue.list_models()
if not models:
    page.no_models_message()
default = catalogue.default_model(catalogue.clinical_models())
for entry in models:
    card = entry.card
    with st.expander(f"{entry.name}" + (" (default)" if default is not None and entry.key == default.key else ""),
                     expanded=len(models) == 1):
        if card.description:
            st.write(text.esc(card.description))
        st.dataframe(ms.three_numbers(card), hide_index=True)
        st.write("Classes: " + ", ".join(text.esc(c) for c in card.class_names))
        prep = card.preprocessing_summary()
        st.dataframe(pd.DataFrame({"preprocessing": list(prep), "value": [text.cell(v) for v in prep.values()]}),
                     hide_index=True)
        page.show_table(ms.training_table(card))
        for key in ("intended_use", "limitations", "license", "licence"):
            if card.extra.get(key):
                st.write(f"**{key.replace('_', ' ').capitalize()}:** {text.esc(card.extra[key])}")
        data = card.data or {}
        if data:
            st.caption("Training data fingerprint: " + text.esc(", ".join(f"{k}: {v}" for k, v in
                                                                       (data.get("train") or data).items())))

st.caption(f"Models are read from {text.esc(catalogue.weights_dir())} (set {catalogue.WEIGHTS_ENV} to change).")
