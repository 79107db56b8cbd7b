"""What the worker environment gets: the one list of pins (tests check it against requirements.txt)
and the package indexes PyTorch is installed from."""

TORCH_VERSION = "2.14.1"
TORCHVISION_VERSION = "0.29.1"
TORCH_REQUIREMENTS = (f"torch=={TORCH_VERSION}", f"torchvision=={TORCHVISION_VERSION}")
WORKER_REQUIREMENTS = (
    "transformers==5.24.0",
    "accelerate==1.15.0",
    "safetensors==0.8.0",
    "tokenizers==0.23.3",
    "bitsandbytes==0.50.2",
    "pillow==13.0.0",
    "numpy<2",
    "attrs>=23.2",
    "rasterio==1.4.4",
    "pyproj==3.7.2",
    "shapely==2.1.2",
    "fiona==1.10.1",
    "jinja2==3.1.6",
)
MIN_PYTHON = (3, 10)

PYTORCH_INDEX = "https://download.pytorch.org/whl/"
CPU_INDEX_URL = PYTORCH_INDEX + "cpu"
