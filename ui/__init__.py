"""Streamlit-only helpers for the MRI Vision app (the `mrivision` package itself holds no Streamlit)."""
