"""Where a scan sits in standard (MNI152) space, and what that says about its anatomy."""
