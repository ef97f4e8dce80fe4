"""A training script beside a model counts for that model only when it imports the model's module: a
`train_other.py` in the same folder trains another model, and its lr writes say nothing about this one."""

from mulint.reading.lr_scale_reads import imports_module, training_files


def test_only_scripts_that_import_the_model_are_its_training(tmp_path):
    (tmp_path / "gpt.py").write_text("class GPT: ...\n")
    (tmp_path / "mlp.py").write_text("class MLP: ...\n")
    (tmp_path / "train_gpt.py").write_text("from gpt import GPT\nfor g in opt.param_groups: g['lr'] = lr\n")
    (tmp_path / "train_pkg.py").write_text("from models import mlp\n")
    (tmp_path / "train_broken.py").write_text("def (:\n")
    assert training_files(tmp_path / "mlp.py", []) == [
        (tmp_path / "mlp.py").resolve(),
        (tmp_path / "train_pkg.py").resolve(),
    ]
    assert (tmp_path / "train_gpt.py").resolve() in training_files(tmp_path / "gpt.py", [])
    assert not imports_module(tmp_path / "train_broken.py", "gpt")
    assert imports_module(tmp_path / "train_gpt.py", "gpt") and not imports_module(tmp_path / "train_gpt.py", "mlp")
