"""Native EarthGPT-X (DESIGN §6): configuration, model, processor, training and converters.

Importing this package registers ``model_type`` ``earthgptx`` with ``AutoConfig``, ``AutoModel``,
``AutoModelForCausalLM``-free ``AutoModelForImageTextToText`` and ``AutoProcessor``-free loading
(use ``EarthGPTXProcessor.from_pretrained``), so a saved folder loads like any transformers model.
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText

from .configuration import EarthGPTXConfig
from .modeling import SKIP_QUANTIZATION, EarthGPTXForConditionalGeneration
from .processing import EarthGPTXProcessor

AutoConfig.register("earthgptx", EarthGPTXConfig, exist_ok=True)
AutoModel.register(EarthGPTXConfig, EarthGPTXForConditionalGeneration, exist_ok=True)
AutoModelForImageTextToText.register(EarthGPTXConfig, EarthGPTXForConditionalGeneration, exist_ok=True)

__all__ = ["EarthGPTXConfig", "EarthGPTXForConditionalGeneration", "EarthGPTXProcessor", "SKIP_QUANTIZATION"]
