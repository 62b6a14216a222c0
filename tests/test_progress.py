"""One progress setting: every long call follows it, and a call's own argument wins."""

import inspect

import pytest

import interp_steer
from interp_steer import progress as progress_module
from interp_steer.progress import ENV_VAR, progress_bar, progress_enabled, set_progress

# every public call that can take more than a few seconds on a real model
LONG_CALLS = (
    "collect_activations",
    "cross_lingual_similarity",
    "english_damage",
    "english_kl",
    "evaluate",
    "fit_vector",
    "fit_vectors",
    "layer_sweep",
    "load_model",
    "logit_lens",
    "transfer_matrix",
)


@pytest.fixture(autouse=True)
def _default_setting(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    set_progress(None)
    yield
    set_progress(None)


@pytest.mark.parametrize("name", LONG_CALLS)
def test_every_long_call_follows_the_library_setting_by_default(name):
    fn = getattr(interp_steer, name)
    param = inspect.signature(fn).parameters.get("progress")
    assert param is not None, f"{name} takes no progress argument"
    assert param.default is None, f"{name}(progress={param.default!r}) ignores set_progress"


def test_a_calls_own_argument_beats_the_setting():
    set_progress(True)
    assert progress_enabled(None) is True
    assert progress_enabled(False) is False
    set_progress(False)
    assert progress_enabled(None) is False
    assert progress_enabled(True) is True


def test_the_environment_decides_when_nothing_else_does(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "1")
    assert progress_enabled() is True
    monkeypatch.setenv(ENV_VAR, "0")
    assert progress_enabled() is False
    set_progress(True)  # the setting beats the environment
    assert progress_enabled() is True
    set_progress(None)
    monkeypatch.setenv(ENV_VAR, "yes")
    with pytest.raises(ValueError, match="must be 0 or 1"):
        progress_enabled()


def test_default_is_on_in_a_jupyter_kernel_and_off_when_piped(monkeypatch):
    monkeypatch.setattr(progress_module, "_interactive", lambda: False)
    assert progress_enabled() is False
    monkeypatch.setattr(progress_module, "_interactive", lambda: True)
    assert progress_enabled() is True


def test_jupyter_kernel_counts_as_interactive(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ipykernel", object())
    assert progress_module._interactive() is True


def test_set_progress_refuses_a_non_bool():
    with pytest.raises(Exception, match="True, False or None|bool | None"):
        set_progress("yes")  # type: ignore[arg-type]


def test_a_bar_closes_before_an_error_propagates(capsys):
    with pytest.raises(RuntimeError), progress_bar(total=3, desc="work", progress=True) as bar:
        bar.update(1)
        raise RuntimeError("boom")
    assert bar.disable or bar.n == 1
    err = capsys.readouterr().err
    assert "work" in err
    print("after")  # nothing of the bar is redrawn after the error
    assert capsys.readouterr().err == ""


def test_fit_vector_shows_its_progress_when_the_library_says_so(tiny, capsys):
    pairs = interp_steer.ParallelCorpus(("The cat", "A dog"), ("Die Katze", "Ein Hund"), "de", "en")
    set_progress(True)
    interp_steer.fit_vector(tiny, pairs, layer=1)
    shown = capsys.readouterr().err
    set_progress(False)
    interp_steer.fit_vector(tiny, pairs, layer=1)
    hidden = capsys.readouterr().err
    assert "activations" in shown
    assert hidden == ""


def test_generation_counts_its_tokens(tiny, capsys):
    from interp_steer.models import generate_texts

    set_progress(True)
    generate_texts(tiny, ["Hallo"], max_new_tokens=3)
    assert "generating" in capsys.readouterr().err
    generate_texts(tiny, ["Hallo"], max_new_tokens=3, progress=False)
    assert capsys.readouterr().err == ""


def test_transfer_counts_its_cells(tiny, capsys):
    from interp_steer.analysis import Score

    def plain(model, lang, vector, alpha, stage):
        return Score(0.5, 0.4, 0.6, 4)

    plain.name = "plain accuracy"
    kw = dict(task=plain, layer=1, n_fit=4, english=False)
    set_progress(True)
    interp_steer.transfer_matrix(tiny, ["de", "sw"], **kw)
    err = capsys.readouterr().err
    assert "transfer cells" in err and " 0/6 " in err  # 2 targets × (baseline + 2 sources)
    interp_steer.transfer_matrix(tiny, ["de", "sw"], progress=False, **kw)
    assert "transfer cells" not in capsys.readouterr().err


def test_load_model_turns_transformers_bars_off_with_the_setting(monkeypatch, tmp_path):
    from transformer_lens.model_bridge import TransformerBridge
    from transformers.utils import logging as hf_logging

    seen = []

    def boot(path, **kwargs):
        seen.append(hf_logging.is_progress_bar_enabled())
        raise RuntimeError("stop here")

    monkeypatch.setattr(TransformerBridge, "boot_transformers", staticmethod(boot))
    before = hf_logging.is_progress_bar_enabled()
    for progress in (False, True, None):
        set_progress(False)
        with pytest.raises(RuntimeError, match="stop here"):
            interp_steer.load_model(str(tmp_path), progress=progress)
    assert seen == [False, True, False]  # "Loading weights" follows the library's setting
    assert hf_logging.is_progress_bar_enabled() == before  # and is restored afterwards
