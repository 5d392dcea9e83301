import sys

import pytest

from diffsens.runtime import tune_allocator


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_tune_allocator_takes_effect_on_glibc():
    assert tune_allocator() is True
