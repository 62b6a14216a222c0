"""The package's lazy face: every name resolves, to the function, in any import order."""

import subprocess
import sys
import zipfile
from pathlib import Path

import interp_steer


def test_every_export_resolves_and_is_listed():
    assert sorted(interp_steer._EXPORTS) == sorted(interp_steer.__all__)
    for name in interp_steer.__all__:
        obj = getattr(interp_steer, name)
        assert getattr(obj, "__name__", name) == name or not callable(obj)


def test_exports_stay_functions_whatever_was_imported_first():
    code = (
        "import interp_steer.evaluation.results, interp_steer.analysis.lens\n"
        "from interp_steer import compare, logit_lens\n"
        "import interp_steer\n"
        "assert callable(compare) and callable(logit_lens)\n"
        "assert callable(interp_steer.compare) and callable(interp_steer.logit_lens)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_name_exported_before_the_stage_layout_still_imports():
    # fixtures/c8b3e6b/exports.txt: what `from interp_steer import ...` offered at c8b3e6b
    before = (Path(__file__).parent / "fixtures" / "c8b3e6b" / "exports.txt").read_text().split()
    assert len(before) == 43
    assert set(before) | {"alpha_for_ratio"} <= set(interp_steer.__all__)


def test_import_is_lazy():
    code = "import sys, interp_steer.cli.parser; assert 'transformer_lens' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    code = "import sys, interp_steer.cli as c; c.build_parser(); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_wheel_holds_the_library_and_not_the_study(tmp_path):
    root = Path(__file__).resolve().parents[1]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(root), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(tmp_path)],
        check=True, cwd=tmp_path,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("interp_steer-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith(("repro/", "tests/"))]
    stages = {n.split("/")[1] for n in names if n.startswith("interp_steer/") and n.count("/") == 2}
    assert {"models", "data", "steering", "fitting", "analysis", "plotting", "cli"} <= stages
