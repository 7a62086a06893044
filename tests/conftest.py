import os
import tempfile
import warnings

os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")
# computed PSFs are memoised on disk: keep the suite's cache out of the user's home
os.environ.setdefault("UDC_CACHE_DIR", tempfile.mkdtemp(prefix="udc-test-cache-"))

import pytest  # noqa: E402
import torch  # noqa: E402

from udc.sdk.models.config import tiny  # noqa: E402
from udc.sdk.models.lrdif.model import LRDif  # noqa: E402

# modulate_by_z: Z-modulation weights for random test models (defined with the end-to-end fixtures' helpers)
from sdk_bundles import e2e_model, modulate_by_z  # noqa: E402,F401


@pytest.fixture
def cfg():
    return tiny()


@pytest.fixture
def model(cfg):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return modulate_by_z(LRDif(cfg, "embedding").eval())


@pytest.fixture(scope="session")
def e2e_tiny():
    """The end-to-end fixtures' tiny LRDif (random init + Z-modulation weights + head fitted to clusters of its features), whose
    logits depend on clip_image, fpen_s2, the denoiser and the noise (tests/sdk_bundles.py). Do not modify."""
    return e2e_model()


@pytest.fixture
def batch(model):
    from udc.sdk.models.components import example_inputs

    ex = example_inputs(model, batch=3, seed=1)
    ex["labels"] = torch.tensor([0, 3, 6])
    return ex


@pytest.fixture(scope="session")
def astronaut():
    """scikit-image's astronaut photo (NASA, public domain): the real-face fixture."""
    from skimage import data as skimage_data

    return skimage_data.astronaut()


@pytest.fixture(scope="session")
def astronaut_landmarks(astronaut):
    """Its 478 MediaPipe Face Mesh points (detected once per session)."""
    from udc.sdk.faces.detect import MediaPipeFaceMesh

    faces = MediaPipeFaceMesh().detect(astronaut)
    assert faces, "MediaPipe found no face in the astronaut photo"
    return faces[0].landmarks
