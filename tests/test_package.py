"""The package's lazy exports: every name resolves, to the function, in any import order."""

import importlib
import subprocess
import sys

import interp_steer


def test_every_export_resolves_and_is_listed():
    assert sorted(interp_steer._EXPORTS) == sorted(interp_steer.__all__)
    for name in interp_steer.__all__:
        obj = getattr(interp_steer, name)
        assert getattr(obj, "__name__", name) == name or not callable(obj)


def test_names_shared_with_submodules_stay_functions():
    assert {"compare", "logit_lens"} == interp_steer._SHADOWED
    for name in interp_steer._SHADOWED:
        importlib.import_module(f"interp_steer.{name}")  # would rebind the attribute
        assert callable(getattr(interp_steer, name)), name
    code = (
        "import interp_steer.compare, interp_steer.logit_lens\n"
        "from interp_steer import compare, logit_lens\n"
        "assert callable(compare) and callable(logit_lens)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_is_lazy():
    code = "import sys, interp_steer.cli; assert 'transformer_lens' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
