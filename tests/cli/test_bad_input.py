"""Bad arguments and bad files: one line on stderr, exit code 2, no traceback, before work."""

import argparse
import json
import time
import tracemalloc

import pytest
import torch
from cli_run import TINY, one_error, run

from interp_steer.cli.options import MAX_LAYERS, ints
from interp_steer.evaluation import EvalResult
from interp_steer.steering import SteeringVector


def test_a_huge_layer_range_fails_at_once_without_expanding_it(capsys, tmp_path):
    tracemalloc.start()
    try:
        with pytest.raises(argparse.ArgumentTypeError, match="above 1023"):
            ints("0-100000000")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # the old type built a 100M-element list (gigabytes)
    started = time.perf_counter()
    code, _, err = run(capsys, "sweep", *TINY, "--langs", "sw", "--layers", "0-100000000",
                       "--out", tmp_path)  # fmt: skip
    assert time.perf_counter() - started < 5
    assert "--layers" in one_error(code, err)
    assert ints(f"0-{MAX_LAYERS - 1}")[-1] == MAX_LAYERS - 1


@pytest.mark.parametrize(
    ("text", "match"),
    [("3-1", "empty"), ("-1", "expected layers"), ("1,,x", "expected layers"), ("", "expected")],
)
def test_layer_lists_are_checked(text, match):
    with pytest.raises(argparse.ArgumentTypeError, match=match):
        ints(text)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--device", "banana"], "unknown device 'banana'"),
        (["--device", "cuda:99"], "cuda:99"),
        (["--layer", "7"], "--layer: layer 7 is out of range: the model has layers 0..3"),
        (["--layer", "-1"], "expected a layer index"),
        (["--n", "2.5"], "--n: expected a positive integer, got '2.5'"),
        (["--n", "0"], "--n: expected a positive integer"),
        (["--lr", "nan"], "--lr: expected a finite number"),
        (["--lang", "Portugese"], "near matches: pt (Portuguese"),
        (["--lang", "zho_Hant"], "near matches: zh (Chinese, zho_Hans), yue (Cantonese"),
    ],
)
def test_bad_fit_arguments(capsys, tmp_path, argv, expected):
    base = {"--lang": "sw", "--layer": "1", "--n": "2"}
    base.update(dict(zip(argv[::2], argv[1::2], strict=True)))
    args = [x for kv in base.items() for x in kv if kv[0] != "--device"]
    if "--device" in base:
        args += ["--device", base["--device"]]
    code, out, err = run(capsys, "fit", *TINY, *args, "--dataset", "xcopa", "--out", tmp_path)
    assert expected in one_error(code, err)
    assert out == "" and not (tmp_path / "vectors").exists()


def test_cuda_on_a_machine_without_it(capsys, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = run(capsys, "fit", *TINY, "--lang", "sw", "--layer", "1", "--n", "2",
                       "--device", "cuda", "--out", tmp_path)  # fmt: skip
    assert "device 'cuda' is not available" in one_error(code, err)


def test_language_tags_resolve(capsys, tmp_path):
    # pt-BR, no and fil resolve; the data then says which languages it has
    for lang, code in (("pt-BR", "pt"), ("no", "nb"), ("fil", "tl")):
        status, _, err = run(capsys, "fit", *TINY, "--lang", lang, "--layer", "1", "--n", "2",
                             "--dataset", "xcopa", "--out", tmp_path)  # fmt: skip
        assert f"xcopa has no {code} data" in one_error(status, err)


def test_files_that_are_folders_or_not_what_they_claim(capsys, tmp_path):
    folder = tmp_path / "pairs.csv"
    folder.mkdir()
    code, _, err = run(capsys, "fit", *TINY, "--lang", "sw", "--layer", "1", "--pairs", folder,
                       "--out", tmp_path / "a")  # fmt: skip
    assert "is a folder" in one_error(code, err)

    (tmp_path / "v.safetensors").mkdir()
    code, _, err = run(capsys, "eval", *TINY, "--task", "xcopa", "--lang", "sw", "--n", "1",
                       "--vector", tmp_path / "v", "--out", tmp_path / "b")  # fmt: skip
    assert "is a folder" in one_error(code, err)

    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, "fit", *TINY, "--lang", "sw", "--layer", "1", "--n", "2",
                       "--out", tmp_path / "file" / "run")  # fmt: skip
    assert "is a file, not a folder" in one_error(code, err)


def test_vector_metadata_that_is_json_but_not_an_object(capsys, tmp_path):
    from safetensors.torch import load_file, safe_open, save_file

    path = SteeringVector(torch.ones(64), layer=1, source_lang="sw").save(tmp_path / "v")
    with safe_open(str(path), framework="pt") as f:
        header = dict(f.metadata())
    header["meta"] = "[1, 2]"
    save_file(load_file(str(path)), str(tmp_path / "bad.safetensors"), metadata=header)
    code, _, err = run(capsys, "eval", *TINY, "--task", "xcopa", "--lang", "sw", "--n", "1",
                       "--vector", tmp_path / "bad", "--alpha", "1", "--out", tmp_path)  # fmt: skip
    assert "bad.safetensors" in one_error(code, err)


def test_a_cell_file_with_missing_keys(capsys, tmp_path):
    args = ["sweep", *TINY, "--langs", "sw", "--layers", "1", "--ratios", "0.5", "--n", "1",
            "--n-fit", "2", "--no-test", "--out", tmp_path]  # fmt: skip
    assert run(capsys, *args)[0] == 0
    cell = next(p for p in (tmp_path / "cells").rglob("*.json") if "value" in p.read_text())
    cell.write_text(json.dumps({"alpha": 1.0}))
    code, _, err = run(capsys, *args)
    assert str(tmp_path) in one_error(code, err)
    cell.write_text("[1, 2]")  # JSON, but not an object
    code, _, err = run(capsys, *args)
    assert str(tmp_path) in one_error(code, err)


def test_saved_eval_messages_and_a_foreign_json_in_eval(capsys, tmp_path):
    args = ["eval", *TINY, "--task", "xcopa", "--lang", "sw", "--out", tmp_path]
    assert run(capsys, *args, "--n", "3")[0] == 0
    # a smaller n would drop saved items: the message says how many the file holds
    code, _, err = run(capsys, *args, "--n", "2")
    assert "holds 3 items (complete, n=3)" in one_error(code, err)
    # an unrelated .json in eval/ is named and left out of eval.csv, not a crash
    (tmp_path / "eval" / "notes.json").write_text('{"hello": 1}')
    code, _, err = run(capsys, *args, "--n", "4")
    assert code == 0, err
    assert "eval.csv leaves out" in err and "notes.json" in err
    assert len((tmp_path / "eval.csv").read_text().splitlines()) == 2
    # the output file itself being foreign JSON is named too
    target = next(p for p in (tmp_path / "eval").glob("xcopa-*.json"))
    assert EvalResult.load(target).n == 4
    target.write_text("[1, 2, 3]")
    code, _, err = run(capsys, *args, "--n", "4")
    assert "is not an evaluation result" in one_error(code, err)
