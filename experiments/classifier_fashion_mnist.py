"""Fashion-MNIST classifier: the feature space of FD/KID for Fashion-MNIST generators.

Target:   >= 92% test accuracy (10,000 test images); its 128-d penultimate
  features define FD_fashion_mnist_cnn. Not a reproduction of a paper: the
  CNN of classifier_mnist.py (conv3x3 16-16-pool-32-32-pool, dense 128,
  dropout 0.5), Adam(1e-3) with cosine decay over 12 epochs (5,600 steps
  of batch 128), inputs in [0, 1], random left-right flips (model.hflip) in
  the training loss. With 2-pixel shifts as well it underfit: 91.22% test
  (90% training accuracy under augmentation and dropout).
Commands (data: TFDS fashion_mnist via TFDS_DATA_DIR):
  python -m gen_jax.main --config experiments/classifier_fashion_mnist.py \
      --workdir runs/classifier_fashion_mnist
      2 CPU cores: about 2x the MNIST classifier's time
  python -m gen_jax.main --config experiments/classifier_fashion_mnist.py:smoke --workdir /tmp/f
      seconds, on scikit-learn's embedded digits; used by the tests
"""
from gen_jax import config_lib

classifier_mnist = config_lib.sibling(__file__, "classifier_mnist")

VARIANTS = ("smoke",)


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  return classifier_mnist.classifier_config("fashion_mnist", variant, epochs=12, shift=0,
                                             hflip=True)
