import os
import shutil
import tempfile
import warnings

os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")
# Made once per run by the controlling process and inherited by pytest-xdist's workers (`make test` runs two):
# computed PSFs are memoised on disk (kept out of the user's home), and the exported test bundles are shared
# by every worker (tests/sdk_bundles.py, one export per bundle under a file lock). Removed at the end of the run.
_MADE_HERE = [os.environ.setdefault(var, tempfile.mkdtemp(prefix=prefix))
              for var, prefix in (("UDC_CACHE_DIR", "udc-test-cache-"), ("UDC_TEST_BUNDLE_CACHE", "udc-test-bundles-"))
              if var not in os.environ]

import pytest  # noqa: E402
import torch  # noqa: E402

from udc.sdk.models.config import tiny  # noqa: E402
from udc.sdk.models.lrdif.model import LRDif  # noqa: E402

# modulate_by_z: Z-modulation weights for random test models (defined with the end-to-end fixtures' helpers)
from sdk_bundles import e2e_model, modulate_by_z  # noqa: E402,F401

if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):  # share the cores between the workers (torch defaults to all)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))


#: The slowest test files, slowest first (measured with `pytest --durations=0`). `make test` gives each of its two
#: pytest-xdist workers a whole file at a time, in collection order (--dist loadfile --no-loadscope-reorder),
#: so starting with the longest keeps both busy to the end; within a file the order is unchanged. A stale list
#: costs only wall time.
SLOWEST_FIRST = ("test_export_int8.py", "test_export.py", "test_app_contract.py", "test_real_faces_bench.py",
                 "test_ddamfn_deploy.py", "test_export_parallel.py", "test_train.py", "test_observer_cache.py",
                 "test_fail_closed_parity.py", "test_openvino_backend.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


def pytest_unconfigure(config):
    if not hasattr(config, "workerinput"):  # the controlling process (or a run without workers), last out
        for d in _MADE_HERE:
            shutil.rmtree(d, ignore_errors=True)


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
