"""Test-wide settings.

Under CI (the `CI` environment variable is set by the CI runner) hypothesis runs derandomized, so a CI
result is reproducible; locally each run explores new examples. Either way no example database is
written into the checkout.
"""

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, deadline=None)
settings.register_profile("dev", database=None, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def calibrated(tmp_path_factory):
    """(output dir, test-mode Quantizer, exported xmodel) of `_lib.small_quantizer.Net`, calibrated once."""
    from _lib.small_quantizer import calibrate
    return calibrate(tmp_path_factory.mktemp("calibrated"))
