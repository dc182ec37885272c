"""The backbone registry: what the course knows about each `keras.applications` base (the
parameters' checks, stand-in and ImageNet weights, notebook 04's blocks, notebook 07's light models)."""

from __future__ import annotations

from dataclasses import dataclass

from helpers.errors import SettingsError


@dataclass(frozen=True)
class Backbone:
    """One `keras.applications` base and what the course knows of it (notebooks 02, 04, "Step 1", "The model")."""
    name: str  # the course's name, as in MODELS
    title: str  # how readers see it
    application: str  # the keras.applications constructor, e.g. "ResNet50"
    module: str  # the keras.applications module holding its preprocess_input
    block_pattern: str  # regex on layer names; group 1 names the block a layer belongs to
    imagenet_file: str  # Keras's cache name of the no-top ImageNet weights ({size} where it varies)
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

    def weights_file(self, image_size: int) -> str:
        """The file Keras downloads the no-top ImageNet weights into (~/.keras/models/)."""
        if "{size}" not in self.imagenet_file:
            return self.imagenet_file
        return self.imagenet_file.format(size=image_size if image_size in self.weights_sizes else 224)


BACKBONES: dict[str, Backbone] = {b.name: b for b in (
    Backbone("resnet50", "ResNet50", "ResNet50", "resnet50", r"^(conv\d_block\d+)_",
             "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", light=False),
    Backbone("mobilenet", "MobileNet (v1)", "MobileNet", "mobilenet", r"^conv_(?:dw|pw|pad)_(\d+)(?:_|$)",
             "mobilenet_1_0_{size}_tf_no_top.h5", light=True, weights_sizes=(128, 160, 192, 224)),
    Backbone("mobilenet_v2", "MobileNetV2", "MobileNetV2", "mobilenet_v2", r"^(block_\d+|expanded_conv)_",
             "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5", light=True,
             weights_sizes=(96, 128, 160, 192, 224)),
    Backbone("efficientnetv2_b0", "EfficientNetV2-B0", "EfficientNetV2B0", "efficientnet_v2",
             r"^(block\d+[a-z])_", "efficientnetv2-b0_notop.h5", light=True),
)}


def get(name: str) -> Backbone:
    """A backbone by name, else a `SettingsError` listing the valid ones (02, "The images they get wrong";
    04, "The model, and BatchNorm kept in inference mode"; 05, "Where the errors are")."""
    if name not in BACKBONES:
        raise SettingsError(f"Unknown model {name!r} in MODELS; choose from {', '.join(BACKBONES)}.")
    return BACKBONES[name]
