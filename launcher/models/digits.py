"""Handwritten digits (the 8x8 images that scikit-learn ships): a small but real classifier.

Written as an Estimator user writes a model: a tf.data pipeline read through a one-shot iterator,
`tf.compat.v1.layers` with batch normalisation, a held-out eval set (a fifth of the images, the same on every
task) scored by accuracy, and a serving signature that takes raw pixels (0-16, as `load_digits` gives them)
and returns the class and the probabilities. Needs scikit-learn (`pip install 'tf-cluster-launcher[digits]'`)
and TensorFlow's Keras 2 layers (tf-keras, with TF_USE_LEGACY_KERAS=1).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from absl import flags

import launcher
from launcher.models import common

try:
    from sklearn.datasets import load_digits
except ImportError:
    raise ImportError("launcher.models.digits needs scikit-learn: pip install 'tf-cluster-launcher[digits]'") from None

PIXELS, CLASSES, MAX_PIXEL = 64, 10, 16.0
EVAL_FRACTION = 0.2
HIDDEN = flags.DEFINE_integer("digits_hidden", 128, "Units of the digits model's hidden layer.", lower_bound=1)


def split(seed: int = 0):
    """(train, eval) arrays: a fixed shuffle, so every task holds out the same images."""
    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    images, labels = digits.data[order].astype(np.float32), digits.target[order].astype(np.int64)
    held_out = int(len(labels) * EVAL_FRACTION)
    return (images[held_out:], labels[held_out:]), (images[:held_out], labels[:held_out])


def _layers():
    try:
        return tf.compat.v1.layers.dense, tf.compat.v1.layers.batch_normalization
    except AttributeError:
        raise RuntimeError("launcher.models.digits needs tf.compat.v1.layers: install tf-keras and set "
                           "TF_USE_LEGACY_KERAS=1 before TensorFlow is imported") from None


def _logits(images, training: bool):
    dense, batch_normalization = _layers()
    x = images / MAX_PIXEL
    x = dense(x, HIDDEN.value, use_bias=False, name="hidden")
    x = tf.nn.relu(batch_normalization(x, training=training, name="hidden_bn"))
    # Batch normalisation's moving averages (UPDATE_OPS) are run by the launcher's train op with each step.
    return dense(x, CLASSES, name="logits")


def build(mode: str) -> launcher.Model:
    if mode == launcher.PREDICT:
        pixels = tf.compat.v1.placeholder(tf.float32, [None, PIXELS], name="pixels")
        probabilities = tf.nn.softmax(_logits(pixels, training=False))
        return launcher.Model(serving=launcher.Serving(
            inputs={"pixels": pixels},
            outputs={"class": tf.argmax(probabilities, axis=1), "probabilities": probabilities}))
    (train_images, train_labels), (eval_images, eval_labels) = split(common.SEED.value)
    batch_size = common.value_or(common.BATCH_SIZE, 64)
    if mode == launcher.EVAL:
        dataset = tf.data.Dataset.from_tensor_slices((eval_images, eval_labels)).batch(batch_size)
        images, labels = tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()
        logits = _logits(images, training=False)
        return launcher.Model(
            loss=tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, logits),
            eval_metrics={"accuracy": tf.compat.v1.metrics.accuracy(labels, tf.argmax(logits, axis=1))})
    dataset = (tf.data.Dataset.from_tensor_slices((train_images, train_labels))
               .shuffle(len(train_labels)).repeat().batch(batch_size))
    images, labels = tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()
    loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, _logits(images, training=True))
    return launcher.Model(loss=loss, optimizer=tf.compat.v1.train.AdamOptimizer(
        common.value_or(common.LEARNING_RATE, 1e-2)))
