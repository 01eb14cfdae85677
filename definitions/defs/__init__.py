"""The example's defs folder: components declared in YAML (`dg scaffold defs ...` adds one here)."""
