"""The pytest plugin, run with pytester: the `mup_check` fixture and `pytest --mulint`."""

import textwrap

import pytest
import torch  # noqa: F401  pytester's in-process runs unload modules they import; torch cannot be imported twice
import torch._dynamo  # noqa: F401  (imported by mulint.check's eager mode: registers torch libraries once only)

# Imported here for the same reason: modules an in-process run imports first are unloaded after it, and
# a later run's fresh copies no longer match the records of those still loaded (the wire's).
import mulint.api  # noqa: F401
import mulint.engine.checker  # noqa: F401
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.slow  # pytest runs in subprocesses

pytest_plugins = ["pytester"]


def test_mup_check_fixture_fails_with_the_findings(pytester):
    pytester.makepyfile(
        test_models=textwrap.dedent(f"""
        import importlib.util

        def load(name):
            spec = importlib.util.spec_from_file_location(name, {str(EXAMPLES)!r} + "/" + name + ".py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module

        def test_sp_model(mup_check):
            sp = load("mlp_sp")
            assert mup_check(lambda w: sp.MLP(width=w), optimizer_fn=sp.make_optimizer).ok

        def test_mup_model(mup_check):
            mup = load("mlp_mup")
            assert mup_check(lambda w: mup.MLP(width=w), optimizer_fn=mup.make_optimizer, widths=[64, 128]).ok
    """)
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*Captured stdout call*", "*MU102 readout init*", "*MU301 Adam*", "Found 3 problems."])


def test_pytest_mulint_collects_the_config_targets(pytester):
    pytester.makepyprojecttoml(
        textwrap.dedent(f'''
        [tool.mulint]
        targets = ["{EXAMPLES / "mlp_sp.py"}:MLP", "{EXAMPLES / "mlp_mup.py"}:MLP"]
    ''')
    )
    result = pytester.runpytest("--mulint", "-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*mulint*mlp_sp.py:MLP* FAILED*", "*mulint*mlp_mup.py:MLP* PASSED*", "*MU102*"])


def test_pytest_mulint_without_targets_is_a_usage_error(pytester):
    pytester.makepyprojecttoml("[tool.mulint]\nselect = ['MU1']\n")
    result = pytester.runpytest("--mulint", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no `targets`*"])


def test_without_the_option_nothing_is_added(pytester):
    pytester.makepyprojecttoml(f'[tool.mulint]\ntargets = ["{EXAMPLES / "mlp_sp.py"}:MLP"]\n')
    pytester.makepyfile(test_nothing="def test_one():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_pytest_mulint_runs_by_the_configs_profile_jobs_and_timeout(pytester, monkeypatch):
    """The items run with every setting of [tool.mulint], as `mulint check` does (the plugin once read the
    table itself and dropped `profile` and `jobs`). The workers are stood in for: what they are given is
    what is tested."""
    from mulint.engine import checker
    from mulint.engine.isolation import Outcome

    given = []

    def run_jobs(jobs, limits, **kwargs):
        given.append((jobs, limits))
        return [
            Outcome(job=job, value={"findings": [], "target": {"target": job.target, "mode": "model"}}) for job in jobs
        ]

    monkeypatch.setattr(checker, "run_jobs", run_jobs)
    monkeypatch.setattr(checker, "warm_up", lambda: None)
    pytester.makepyprojecttoml(
        textwrap.dedent(f'''
        [tool.mulint]
        targets = ["{EXAMPLES / "mlp_mup.py"}:MLP", "{EXAMPLES / "mlp_sp.py"}:MLP"]
        profile = "spectral"
        jobs = 3
        timeout = 42
        lr-scale-key = "lr_factor"
    ''')
    )
    result = pytester.runpytest("--mulint", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert len(given) == 2
    for jobs, limits in given:
        [job] = jobs
        assert (job.options.profile, job.options.lr_scale_keys) == ("spectral", ("lr_factor",))
        assert (limits.jobs, limits.timeout) == (3, 42.0)
