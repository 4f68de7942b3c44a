"""Supply–demand docking: match shortages with stock and spare or convertible capacity."""
