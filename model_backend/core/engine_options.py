"""The engine settings both processes offer (the plugin's settings dialog, the command line): the
default model and the accepted device and quantization names (``models.loading`` applies them)."""

DEFAULT_MODEL = "Qwen/Qwen3.5-4B"  # why: README, "Models, GPU and memory"
#: the default segmenter: SAM 2.1 base-plus, the knee of quality per GB (README, "Outlines")
DEFAULT_SEGMENTER = "facebook/sam2.1-hiera-base-plus"
DEVICES = ("auto", "cuda", "mps", "cpu")
QUANTIZATIONS = ("auto", "4bit", "bf16", "fp32")
