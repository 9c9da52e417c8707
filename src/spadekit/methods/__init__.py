"""Methods of the SPADE family: networks + objective + presets, registered by name."""
