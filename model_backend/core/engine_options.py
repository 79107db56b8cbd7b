"""The engine settings both processes offer (the plugin's settings dialog, the command line): the
default model and the accepted device and quantization names (``models.loading`` applies them)."""

DEFAULT_MODEL = "Qwen/Qwen3.5-4B"  # why: README, "Models, GPU and memory"
DEVICES = ("auto", "cuda", "mps", "cpu")
QUANTIZATIONS = ("auto", "4bit", "bf16", "fp32")
