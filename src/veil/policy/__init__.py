"""Mask policies: turn what was found into a MaskPlan (what to hide, how, why)."""
