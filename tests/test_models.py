import pytest

from superpose import load_backend
from superpose.errors import ModelNotAvailable
from superpose.models import EMBEDDED_MODELS
from superpose.models.loading import resolve_model


def test_embedded_model_provenance(smollm):
    info = smollm.provenance
    assert info["sha256"] == {"SmolLM2-135M-Instruct.Q4_1.gguf": EMBEDDED_MODELS["smollm2-135m"].sha256}
    assert info["architecture"] == "LlamaForCausalLM"
    assert 130e6 < info["n_parameters"] < 140e6
    assert smollm.max_context == 8192
    assert not smollm.model.training


def test_unknown_model_names_the_choices():
    with pytest.raises(ModelNotAvailable, match="unknown model 'gpt-7'.*smollm2-135m.*superpose models"):
        resolve_model("gpt-7")


def test_files_that_are_not_models_are_refused(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelNotAvailable, match="expected a .gguf file"):
        resolve_model(str(tmp_path / "weights.bin"))
    with pytest.raises(ModelNotAvailable, match="no config.json"):
        resolve_model(str(tmp_path))


def test_missing_optional_model_says_how_to_install(monkeypatch):
    entry = EMBEDDED_MODELS["qwen2.5-coder-0.5b"]
    if entry.installed():
        pytest.skip("the optional Qwen model is installed here")
    with pytest.raises(ModelNotAvailable, match="(?s)not installed.*make models-qwen"):
        load_backend("qwen2.5-coder-0.5b")


def test_bad_dtype_is_refused():
    with pytest.raises(Exception, match="dtype must be one of float32, bfloat16, float16"):
        load_backend("smollm2-135m", dtype="float8")
