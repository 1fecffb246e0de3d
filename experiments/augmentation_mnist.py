"""Data augmentation on MNIST with a class-conditional VAE; train on synthetic, test on real.

Target: no canonical number (there is no agreed MNIST result for a classifier
  trained on real + generated digits). The protocol is the Classification
  Accuracy Score of Ravuri & Vinyals 2019 ("Classification Accuracy Score for
  Conditional Generative Models"): train a classifier on generated examples,
  test it on the real test set; here also on real subsets of 100 / 1,000 / all
  60,000 labels plus 0, 1 or 4 synthetic examples per real one, mean ± std over
  3 seeds. The table and figure report the measured curve. The nearest
  published reference is semi-supervised, not augmentation: M1+M2 with 100
  labels, 3.33% test error (Kingma, Rezende, Mohamed & Welling 2014, Table 1),
  which also uses the 50,000 unlabelled digits; the generator here is trained
  on all labelled training digits, as the CAS protocol prescribes.
Protocol (gen_jax.applications.augmentation): the generator is
  experiments/vae_mnist.py:cond (a CVAE: the one-hot label joins the encoder
  and decoder inputs), trained once in <workdir>/generator/; a balanced pool
  of its samples (decoder means, 8-bit) is drawn once to <workdir>/synthetic/;
  each (num_real, ratio, seed) trains the classifier of
  experiments/classifier_mnist.py in <workdir>/<n>_<ratio>_<seed>/ on a
  stratified real subset fixed by the seed plus balanced synthetic examples,
  and is tested on the 10,000 real test digits. Ratio 0 is the real-only
  baseline (identical to a classifier trained on the same subset and seed);
  "tstr" trains on n synthetic examples alone (n = all: the CAS).

Variants and commands (data: TFDS mnist via TFDS_DATA_DIR):
  python -m gen_jax.main --config experiments/augmentation_mnist.py \
      --workdir runs/augmentation_mnist
      the classifier experiment as it is (2,800 steps of batch 128, or of batch n
      for n < 128) for 3 x 4 x 3 = 36 sub-runs, a pool of 240,000 samples;
      one GPU: about an hour; 2 CPU cores: about 9 hours (not run here)
  python -m gen_jax.main --config experiments/augmentation_mnist.py:cpu \
      --workdir runs/augmentation_mnist_cpu
      the same grid with a smaller classifier (conv 8-8-pool-16-16-pool, dense 64)
      for 300 steps of batch 64 per sub-run (1/3 epoch of the 60,000 digits: a
      step-limited classifier, so "all" barely beats 1,000); 0.6 GB of disk.
      Measured on 2 CPU cores shared with other jobs (this run got ~40% of
      them): 53 min wall (generator 2.5 min + its evaluation 2 min, then ~80 s
      per sub-run); test accuracy, mean ± std over seeds 0, 1, 2:
        real labels    real only      + 1x synth     + 4x synth     synthetic only
        100            0.875 ± 0.020  0.889 ± 0.019  0.909 ± 0.008  0.817 ± 0.026
        1,000          0.942 ± 0.007  0.931 ± 0.006  0.918 ± 0.011  0.899 ± 0.009
        60,000         0.946 ± 0.003  0.933 ± 0.010  0.922 ± 0.006  0.904 ± 0.010 (CAS)
  python -m gen_jax.main --config experiments/augmentation_mnist.py:smoke --workdir /tmp/aug_smoke
      embedded 8x8 digits: vae_mnist.py:cond_smoke and the classifier smoke for
      20 steps, 100 real labels, ratios 0 and 1 and tstr, seeds 0 and 1; seconds
      on CPU; used by the tests
Rerunning a command reuses the generator, the pool and every finished sub-run.
"""
from gen_jax import config_lib

VARIANTS = ("cpu", "smoke")


def get_config(arg: str = ""):
  variant = config_lib.parse_variant(arg, VARIANTS)
  c = config_lib.base()
  c.application = dict(
      type="augmentation",
      generator="experiments/vae_mnist.py:cond", generator_overrides={},
      classifier="experiments/classifier_mnist.py", classifier_overrides={},
      num_real=(100, 1000, 0), synthetic_ratio=(0, 1, 4), tstr=True, seeds=(0, 1, 2),
      sample_batch=2000)
  c.reference.update(
      metric="n100/ratio4/accuracy", value=0.0,
      also=("n100/ratio0/accuracy", "nall/tstr/accuracy"),
      source="no canonical number: CAS protocol (Ravuri & Vinyals 2019); semi-supervised "
             "reference M1+M2, 100 labels, 3.33% error (Kingma et al. 2014, Table 1)")
  if variant == "cpu":
    c.application.classifier_overrides = {
        "model": {"channels": (8, 16), "feature_dim": 64},
        "data": {"batch_size": 64},
        "total_steps": 300, "log_every_steps": 100, "ckpt_every_steps": 300,
        "optim": {"model": {"warmup_steps": 30, "decay_steps": 300}}}
  if variant == "smoke":
    c.application.update(
        generator="experiments/vae_mnist.py:cond_smoke",
        generator_overrides={"eval_at_end": False},
        classifier="experiments/classifier_mnist.py:smoke",
        classifier_overrides={"total_steps": 20, "steps_per_dispatch": 1, "log_every_steps": 10,
                              "ckpt_every_steps": 20,
                              "optim": {"model": {"decay_steps": 20}}},
        num_real=(100,), synthetic_ratio=(0, 1), seeds=(0, 1), sample_batch=100)
  return c
