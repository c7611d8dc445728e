"""Cache keys from the values that were set: adding a Recipe (or GanRecipe) field with a default
keeps every existing model key; setting it changes the key; the keys of a tiny job are pinned."""
import dataclasses

import pytest
import torch

from overconf.core.cache import content_key, set_values
from overconf.config import Recipe
from overconf.config.gan import GanRecipe
from overconf.gan.training import GanJob
from overconf.training.jobs import ClassifierJob

IMAGES = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
LABELS = torch.tensor([0, 1])
# keys computed by overconf before the set-values scheme (the key then held dataclasses.asdict(recipe))
CLASSIFIER_KEY = "15c90dce4f1e5e163e13142f"
BATCHED_REFERENCE_KEY = "0d1d88c7e34a5125a6cc034c"
GENERATOR_KEY = "a8482e907f85bf76d6bbd7fb"


def job(recipe) -> ClassifierJob:
    return ClassifierJob("salem_cnn", recipe, 3, IMAGES, LABELS, torch.tensor([0.5]), torch.tensor([0.25]), 2,
                         params={"width": 8})


def gan_job(recipe) -> GanJob:
    return GanJob("dcgan", {}, True, recipe, 5, IMAGES, LABELS, 2)


# a Recipe as it would be after a defense adds a field with a default (e.g. DP-SGD's noise multiplier)
Extended = dataclasses.make_dataclass("Extended", [("noise_multiplier", float, dataclasses.field(default=0.0))],
                                      bases=(Recipe,))
GanExtended = dataclasses.make_dataclass("GanExtended", [("ema", float, dataclasses.field(default=0.0))],
                                         bases=(GanRecipe,))
GAN_RECIPE = dict(steps=4, batch_size=2, lr=2e-4, beta1=0.5, beta2=0.999)


def test_keys_of_a_tiny_job_are_pinned():
    key = job(Recipe(epochs=2, lr=0.01)).key
    assert key == CLASSIFIER_KEY
    assert content_key({"kind": "reference_model", "trainer": "batched", "job": key}) == BATCHED_REFERENCE_KEY
    assert gan_job(GanRecipe(**GAN_RECIPE)).key == GENERATOR_KEY


def test_a_new_recipe_field_at_its_default_keeps_the_key():
    assert job(Extended(epochs=2, lr=0.01)).key == CLASSIFIER_KEY
    assert gan_job(GanExtended(**GAN_RECIPE)).key == GENERATOR_KEY


def test_a_new_recipe_field_set_to_another_value_changes_the_key():
    keys = {job(Extended(epochs=2, lr=0.01, noise_multiplier=v)).key for v in (0.0, 1.0, 2.0)}
    assert len(keys) == 3 and CLASSIFIER_KEY in keys
    assert gan_job(GanExtended(**GAN_RECIPE, ema=0.9)).key != GENERATOR_KEY


def test_fields_of_the_original_recipe_always_enter_the_key():
    """Even at their defaults (as dataclasses.asdict had them), so existing keys do not change."""
    assert job(Recipe()).key != job(Recipe(label_smoothing=0.1)).key
    assert set_values(Recipe(), ("epochs",)) == {"epochs": 20}
    assert set_values(Recipe(lr=0.5)) == {"lr": 0.5}
    assert set_values(GanRecipe(**GAN_RECIPE)) == GAN_RECIPE  # no defaults: every field


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(Recipe)])
def test_every_recipe_field_changes_the_key(field):
    default = getattr(Recipe(), field)
    special = {"optimizer": "sgd", "epochs": 3, "batch_size": 7, "loss": "mse"}
    other = special[field] if field in special else (default / 2 if default else 0.25)
    assert job(Recipe(**{field: other})).key != job(Recipe()).key


@pytest.mark.parametrize("mode", ["sequential", "batched"])
def test_reference_model_keys_keep_with_a_new_recipe_field_at_its_default(mode):
    from tests.test_reference import reference_set

    rs = reference_set(mode, k=2)
    same = dataclasses.replace(rs, recipe=Extended(**dataclasses.asdict(rs.recipe)))
    assert same.model_keys == rs.model_keys and same.key == rs.key
    other = dataclasses.replace(rs, recipe=Extended(**dataclasses.asdict(rs.recipe), noise_multiplier=1.0))
    assert set(other.model_keys).isdisjoint(rs.model_keys) and other.key != rs.key
