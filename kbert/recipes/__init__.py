"""End-to-end jobs built from the stages (`quickstart`: fetch -> fine-tune ->
export -> verify)."""
