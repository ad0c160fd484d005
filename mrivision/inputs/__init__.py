"""Reading slices, volumes and data sets; framing and transforms."""
