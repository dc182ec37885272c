"""Freezing strategies: exact trainable counts (the article's table), the right layers, clear errors."""

import keras
import numpy as np
import pytest

from helpers import finetune, models
from helpers.config import SettingsError

# Article 002's "Trainable Parameters" column: GAP + Dense(5) on each base.
ARTICLE_COUNTS = {
    "resnet50": {"frozen": 10_245, "layers:5": 1_064_965, "layers:10": 4_475_909,
                 "layers:40": 15_842_053, "blocks:2": 8_941_573, "blocks:4": 16_104_965,
                 "blocks:10": 22_375_685},
    "mobilenet": {"frozen": 5_125, "layers:5": 1_057_797, "layers:10": 1_593_349,
                  "layers:40": 2_937_349, "blocks:2": 1_598_981, "blocks:4": 2_136_581,
                  "blocks:10": 3_181_445},
}


@pytest.fixture(scope="module")
def classifiers():
    return {name: models.build_classifier(name, 32, 5, weights=None) for name in ARTICLE_COUNTS}


@pytest.mark.parametrize("name", list(ARTICLE_COUNTS))
@pytest.mark.parametrize("strategy", list(ARTICLE_COUNTS["resnet50"]))
def test_trainable_counts_equal_the_articles_table(classifiers, name, strategy):
    classifier = classifiers[name]
    finetune.apply_strategy(classifier.base, name, strategy)
    assert finetune.trainable_params(classifier.model) == ARTICLE_COUNTS[name][strategy]


def test_layers_counts_entries_with_or_without_weights(classifiers):
    base = classifiers["resnet50"].base
    names = finetune.apply_strategy(base, "resnet50", "layers:5")
    assert names == ["conv5_block3_2_relu", "conv5_block3_3_conv", "conv5_block3_3_bn",
                     "conv5_block3_add", "conv5_block3_out"]
    assert finetune.trainable_layer_names(base) == names


def test_blocks_are_the_architectures_own(classifiers):
    resnet = finetune.blocks(classifiers["resnet50"].base, "resnet50")
    assert len(resnet) == 16 and list(resnet)[-2:] == ["conv5_block2", "conv5_block3"]
    assert [layer.name for layer in resnet["conv5_block3"]][-1] == "conv5_block3_out"
    mobilenet = finetune.blocks(classifiers["mobilenet"].base, "mobilenet")
    assert list(mobilenet) == [str(i) for i in range(1, 14)]
    assert {layer.name for layer in mobilenet["12"]} == {
        "conv_pad_12", "conv_dw_12", "conv_dw_12_bn", "conv_dw_12_relu",
        "conv_pw_12", "conv_pw_12_bn", "conv_pw_12_relu"}
    names = finetune.apply_strategy(classifiers["mobilenet"].base, "mobilenet", "blocks:2")
    assert all(n.endswith(("_12", "_13")) or "_12_" in n or "_13_" in n for n in names)
    # the stem never belongs to a block
    assert "conv1" not in {layer.name for group in mobilenet.values() for layer in group}


@pytest.mark.parametrize(("name", "count"), [("mobilenet_v2", 17), ("efficientnetv2_b0", 21)])
def test_other_backbones_have_blocks_too(name, count):
    classifier = models.build_classifier(name, 32, 5, weights=None)
    groups = finetune.blocks(classifier.base, name)
    assert len(groups) == count
    finetune.apply_strategy(classifier.base, name, "blocks:1")
    last = list(groups.values())[-1]
    expected = finetune.count_params(w for layer in last for w in layer.trainable_weights)
    assert finetune.trainable_params(classifier.model) == expected + finetune.trainable_params(classifier.head)


def test_frozen_and_all(classifiers):
    classifier = classifiers["mobilenet"]
    assert finetune.apply_strategy(classifier.base, "mobilenet", "frozen") == []
    assert finetune.trainable_params(classifier.model) == 5_125
    finetune.apply_strategy(classifier.base, "mobilenet", "all")
    assert finetune.trainable_params(classifier.model) == 3_206_976 + 5_125


@pytest.mark.parametrize(("strategy", "message"), [
    ("blocks:17", "ResNet50 has 16 blocks; 'blocks:17' asks for more, use at most 16."),
    ("layers:500", "ResNet50 has 175 layers; 'layers:500' asks for more, use at most 175."),
    ("from:175", "ResNet50 has 175 layers; 'from:175' starts past the end, use a number below 175."),
    ("top:3", "Unknown strategy 'top:3'; use 'frozen', 'all'"),
])
def test_a_strategy_the_backbone_cannot_do_is_a_clear_error(classifiers, strategy, message):
    with pytest.raises(SettingsError) as error:
        finetune.apply_strategy(classifiers["resnet50"].base, "resnet50", strategy)
    assert str(error.value).startswith(message)


def test_unfrozen_batchnorm_keeps_its_moving_statistics():
    """The base is called with training=False: unfrozen BatchNorm layers learn their scale
    and offset, but their moving mean and variance stay those of pre-training."""
    classifier = models.build_classifier("mobilenet", 32, 3, weights=None)
    finetune.apply_strategy(classifier.base, "mobilenet", "blocks:1")
    bn = classifier.base.get_layer("conv_pw_13_bn")
    assert bn.trainable
    mean_before = keras.ops.convert_to_numpy(bn.moving_mean)
    gamma_before = keras.ops.convert_to_numpy(bn.gamma)
    classifier.model.compile(keras.optimizers.SGD(0.1),
                             keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    classifier.model.fit(x, np.arange(16) % 3, epochs=2, batch_size=8, verbose=0)
    assert np.array_equal(keras.ops.convert_to_numpy(bn.moving_mean), mean_before)
    assert not np.array_equal(keras.ops.convert_to_numpy(bn.gamma), gamma_before)
