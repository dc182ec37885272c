"""The backbone registry: what the course knows about each `keras.applications` base (importing
it does not import Keras, so parameters are checked before any model is built)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from helpers.errors import SettingsError


@dataclass(frozen=True)
class Backbone:
    """One `keras.applications` base and what the course needs to know about it."""
    name: str  # the course's name, as in MODELS
    title: str  # how readers see it
    application: str  # the keras.applications constructor, e.g. "ResNet50"
    module: str  # the keras.applications module holding its preprocess_input
    block_pattern: str  # regex on layer names; group 1 names the block a layer belongs to
    imagenet_file: str  # Keras's cache name of the no-top ImageNet weights ({size} where it varies)
    paper_gflops_224: float  # forward GFLOPs per 224x224 image as published (2 per multiply-add)
    light: bool  # built for phones: the models notebook 07 ships
    min_size: int = 32
    weights_sizes: tuple[int, ...] = ()  # image sizes with weights of their own; others get 224's

    def constructor(self):
        """The `keras.applications` function that builds this base."""
        import keras
        return getattr(keras.applications, self.application)

    def preprocess_input(self):
        """`keras.applications.<module>.preprocess_input`: raw 0-255 pixels to what it expects."""
        import keras
        return getattr(keras.applications, self.module).preprocess_input

    def block_of(self, layer_name: str) -> str | None:
        """The block a layer belongs to, or None for stem and top layers (notebook 04)."""
        match = re.match(self.block_pattern, layer_name)
        return match.group(1) if match else None

    def weights_file(self, image_size: int) -> str:
        """The file Keras downloads the no-top ImageNet weights into (~/.keras/models/)."""
        if "{size}" not in self.imagenet_file:
            return self.imagenet_file
        return self.imagenet_file.format(size=image_size if image_size in self.weights_sizes else 224)


BACKBONES: dict[str, Backbone] = {b.name: b for b in (
    # He et al. 2016, Table 1: 3.8e9 multiply-adds
    Backbone("resnet50", "ResNet50", "ResNet50", "resnet50", r"^(conv\d_block\d+)_",
             "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", 2 * 3.8, light=False),
    # Howard et al. 2017, Table 8: 569M multiply-adds
    Backbone("mobilenet", "MobileNet (v1)", "MobileNet", "mobilenet", r"^conv_(?:dw|pw|pad)_(\d+)(?:_|$)",
             "mobilenet_1_0_{size}_tf_no_top.h5", 2 * 0.569, light=True,
             weights_sizes=(128, 160, 192, 224)),
    # Sandler et al. 2018, Table 4: 300M multiply-adds
    Backbone("mobilenet_v2", "MobileNetV2", "MobileNetV2", "mobilenet_v2", r"^(block_\d+|expanded_conv)_",
             "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5", 2 * 0.300,
             light=True, weights_sizes=(96, 128, 160, 192, 224)),
    # Tan & Le 2021, google/automl efficientnetv2 README: 0.72B FLOPs
    Backbone("efficientnetv2_b0", "EfficientNetV2-B0", "EfficientNetV2B0", "efficientnet_v2",
             r"^(block\d+[a-z])_", "efficientnetv2-b0_notop.h5", 2 * 0.72, light=True),
)}


def get(name: str) -> Backbone:
    """A backbone by name; an unknown name is a `SettingsError` that lists the valid ones."""
    if name not in BACKBONES:
        raise SettingsError(f"Unknown model {name!r} in MODELS; choose from {', '.join(BACKBONES)}.")
    return BACKBONES[name]
