"""Fine-tuning and evaluation with the paper's recipe (``dynsnip train`` / ``dynsnip evaluate``).

Library use::

    from dynsnip.engine import Recipe, build_model, make_dataset, train, evaluate

    recipe = Recipe(epochs=30)                       # the paper's defaults
    model = build_model(recipe.model)                # dil_resnet50.tv_in1k
    train_set = make_dataset("faces/faces.csv", model, recipe, train=True, split="train")
    val_set = make_dataset("faces/faces.csv", model, recipe, train=False, split="val")
    result = train(recipe, train_set, val_set, "runs/ff", model=model)
    print(evaluate(result.model, val_set).report["overall"])
"""
from .checkpoint import load_training_checkpoint, save_training_checkpoint
from .data import make_dataset
from .distributed import DistInfo, cleanup_distributed, init_distributed
from .evaluate import EvalResult, evaluate
from .metrics import accuracy, binary_metrics, roc_auc, video_metrics, write_report
from .pseudo_fakes import PseudoFakeCollate, pseudo_fake_clip
from .recipe import PAPER_RECIPE, Recipe
from .train import TrainResult, build_model, save_model, saved_model_folder, train

__all__ = [
    "Recipe",
    "PAPER_RECIPE",
    "train",
    "TrainResult",
    "evaluate",
    "EvalResult",
    "build_model",
    "saved_model_folder",
    "save_model",
    "make_dataset",
    "PseudoFakeCollate",
    "pseudo_fake_clip",
    "roc_auc",
    "accuracy",
    "binary_metrics",
    "video_metrics",
    "write_report",
    "DistInfo",
    "init_distributed",
    "cleanup_distributed",
    "save_training_checkpoint",
    "load_training_checkpoint",
]
