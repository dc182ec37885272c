"""The layer notebook 03 defines in its BatchNorm section and notebook 04 uses: a base called in
inference mode also under `fit`. It lives here too so that saved models holding it load with
`keras.saving.load_model` wherever helpers is imported (notebook 07, `course.predict`)."""

import keras


@keras.saving.register_keras_serializable(package="course")
class InferenceMode(keras.layers.Layer):
    """Calls the wrapped base with `training=False`, even when `fit` passes `training=True`
    (which Keras 3 does through a functional model, keras-team/keras#20285): its BatchNorm
    layers keep their pre-trained statistics while their scale and offset may train."""

    def __init__(self, base: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.base = base

    def call(self, inputs, training=None):
        return self.base(inputs, training=False)

    def get_config(self):
        return {**super().get_config(), "base": keras.saving.serialize_keras_object(self.base)}

    @classmethod
    def from_config(cls, config):
        return cls(keras.saving.deserialize_keras_object(config.pop("base")), **config)
