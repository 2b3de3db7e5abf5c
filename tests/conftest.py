"""Test-wide settings: one thread (tiny models are 10-45x slower with torch's default threads on a
loaded 2-core box), offline Hub, no Gradio analytics."""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import torch  # noqa: E402

torch.set_num_threads(1)


import pytest  # noqa: E402

from .helpers import PARITY, need  # noqa: E402


@pytest.fixture(scope="session")
def io():
    """Inputs and official outputs of the parity fixture (shared/reference/parity/io.safetensors)."""
    from safetensors.torch import load_file

    return load_file(str(need(PARITY / "io.safetensors")))
