"""The Ray executor for real, on a local Ray instance: the same trials give the same losses as in
mulint's own process (same seeds, one thread), and the sweep's verdict does not depend on where it ran."""

from dataclasses import asdict

import pytest

from tests.conftest import MODELS

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

PAIR = MODELS / "transfer_pair.py"


def test_ray_trials_equal_in_process_trials():
    from mulint.reading.functions import FunctionRef
    from mulint.sweep.executors import InProcess, RayExecutor
    from mulint.sweep.runner import SweepSpec, TrialRunner
    from mulint.sweep.store import TrialKey

    spec = SweepSpec(f"{PAIR}:sp_net", optimizer=FunctionRef(str(PAIR), "", "sp_adam"))
    keys = [TrialKey("t", w, x, 0, 12) for w in (32, 64) for x in (-9.0, -7.0)]
    remote = RayExecutor(spec, slots=2)
    try:
        info = remote.describe([32, 64])
        on_ray = dict(remote(keys))
    finally:
        remote.close()
    here = InProcess(TrialRunner(spec))
    assert info["widths"] == here.describe([32, 64])["widths"] == [32, 64]
    assert info["reference_lr"] == pytest.approx(2e-3)
    for key, result in here(keys):
        assert asdict(on_ray[key])["losses"] == pytest.approx(asdict(result)["losses"], rel=1e-5)
    assert not ray.is_initialized()  # the instance started for the sweep is gone


def test_a_cluster_without_the_gpus_asked_for_is_refused():
    from mulint.errors import MulintError
    from mulint.sweep.executors import RayExecutor
    from mulint.sweep.runner import SweepSpec

    with pytest.raises(MulintError, match="gpus-per-trial"):
        RayExecutor(SweepSpec(f"{PAIR}:sp_net"), gpus_per_trial=1)
    assert not ray.is_initialized()
