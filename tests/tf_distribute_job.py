"""One training step of every Keras head under a `tf.distribute` strategy, run as a script by
tests/test_tf_distribute.py (the devices and TF_CONFIG must be set before TensorFlow starts, so not in pytest's own
process).

    python tf_distribute_job.py mirrored OUT.npz          # MirroredStrategy over 2 logical CPU devices; then
                                                          # several epochs of `fit`: the loss per epoch and which
                                                          # encoder loops were traced (keys "fit/...")
    python tf_distribute_job.py multi-worker OUT.npz      # MultiWorkerMirroredStrategy, one worker per process
                                                          # (TF_CONFIG set by the caller)

Each head is built by `fit` itself inside the strategy's scope (no `build()`, no functional wrapper). A callback
records the weights `fit` created (after setting a halting regime where tokens halt at different depths), one SGD
step on a global batch follows, and the same step is repeated on one device (eagerly) from the recorded weights. OUT.npz
holds, per head, the canonical weights before the step, after the distributed step and after the single-device step;
with several workers also what `evaluate` and `predict` give under the strategy, and the model called eagerly.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

MODE, OUT = sys.argv[1], sys.argv[2]
if MODE == "mirrored":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
elif MODE == "multi-worker":
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
else:
    raise SystemExit(f"unknown mode {MODE!r}")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cases  # noqa: E402
import act.tf as tf_models  # noqa: E402
from act import AlbertActConfig  # noqa: E402
from act.tf.modeling import TFAlbertActEncoder  # noqa: E402

# The short schedule of capacity phases (cases.SHORT_TRAINING_SCHEDULE), not the default seven: what is checked here
# is the distribution (the replicas' step equals one device's, fit takes the fast loop), for which the phases are
# the same code; the default schedule's tracing made this job the longest test of the suite (283 s of a 2-core CPU).
# The README's recipe (test_readme_multi_worker_recipe_runs_on_two_local_workers) trains with the default schedule
# under MultiWorkerMirroredStrategy.
TFAlbertActEncoder.TRAIN_CAPACITIES = cases.SHORT_TRAINING_SCHEDULE

HEADS = os.environ.get("ACT_TEST_HEADS", "TFAlbertActForPreTraining,TFAlbertActForMaskedLM,"
                       "TFAlbertActForSequenceClassification,TFAlbertActForTokenClassification,"
                       "TFAlbertActForQuestionAnswering,TFAlbertActForMultipleChoice").split(",")
CONFIG = AlbertActConfig(**cases.tiny_config_kwargs(num_labels=2, ponder_penalty=1e-2, hidden_dropout_prob=0.0,
                                                    attention_probs_dropout_prob=0.0, classifier_dropout_prob=0.0))
GLOBAL_BATCH = 4  # examples (multiple choice: 2 examples of 2 choices), split evenly over the 2 replicas


def data(name):
    """A global batch (x, y) with ragged padding, and the compiled loss: Keras losses that average over every
    example, so the mean over the replicas' equal halves is the mean over the batch."""
    ids, mask, types = cases.make_inputs(7, batch=GLOBAL_BATCH, length=10)
    x = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    rng = np.random.default_rng(3)
    scce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if name == "TFAlbertActForMultipleChoice":
        x = {key: value.reshape(2, 2, 10) for key, value in x.items()}
        y, loss = np.array([1, 0]), scce
    elif name == "TFAlbertActForPreTraining":
        y, loss = {"prediction_logits": ids, "sop_logits": np.array([0, 1, 1, 0])}, \
            {"prediction_logits": scce, "sop_logits": scce}
    elif name == "TFAlbertActForQuestionAnswering":
        y, loss = {"start_logits": np.array([1, 4, 0, 2]), "end_logits": np.array([3, 5, 1, 2])}, \
            {"start_logits": scce, "end_logits": scce}
    elif name == "TFAlbertActForMaskedLM":
        y, loss = ids, scce
    elif name == "TFAlbertActForTokenClassification":
        y, loss = rng.integers(0, 2, ids.shape), scce
    else:
        y, loss = rng.integers(0, 2, GLOBAL_BATCH), scce
    x = {key: value.astype("int32") for key, value in x.items()}
    return x, y, loss


class RecordInitialWeights(keras.callbacks.Callback):
    """At the start of `fit` (the model is built by then): set the halting regime, record the weights."""

    def on_train_begin(self, logs=None):
        prefix = "albert."
        state = cases.apply_regime(self.model.canonical_state_dict(), "mixed", seed=5, prefix=prefix)
        self.model.load_canonical_state_dict(state)
        self.state = self.model.canonical_state_dict()


def one_step(model, x, y, loss, callbacks=(), run_eagerly=False):
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss, run_eagerly=run_eagerly)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(len(x["input_ids"]))
    history = model.fit(dataset, epochs=1, verbose=0, callbacks=list(callbacks))
    assert np.isfinite(history.history["loss"]).all(), history.history
    return model.canonical_state_dict()




def fit_several_epochs():
    """`fit` of a classifier under the strategy on a learnable task (the label is whether token 7 occurs), with the
    default loops: the losses per epoch, and how often each encoder loop was traced."""
    rng = np.random.default_rng(0)
    ids = rng.integers(8, 120, size=(32, 10))
    labels = (rng.random(32) < 0.5).astype("int32")
    ids[labels == 1, rng.integers(1, 10, size=int(labels.sum()))] = 7
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = tf_models.TFAlbertActForSequenceClassification(AlbertActConfig(**cases.tiny_config_kwargs(
            num_labels=2, ponder_penalty=1e-3, classifier_dropout_prob=0.0)))
        model.compile(optimizer=keras.optimizers.Adam(3e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    traced = {"forward_fast_train": 0, "forward_dense": 0}
    for loop in traced:
        original = getattr(model.albert.encoder, loop)

        def counted(*args, _loop=loop, _original=original, **kwargs):
            traced[_loop] += 1
            return _original(*args, **kwargs)

        setattr(model.albert.encoder, loop, counted)
    dataset = tf.data.Dataset.from_tensor_slices(({"input_ids": ids.astype("int32")}, labels)).batch(8)
    history = model.fit(dataset, epochs=6, verbose=0).history
    return {"loss": np.array(history["loss"]), "replicas": np.array(strategy.num_replicas_in_sync),
            **{f"traced/{loop}": np.array(count) for loop, count in traced.items()}}


results = {}
for name in HEADS:
    x, y, loss = data(name)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        distributed = getattr(tf_models, name)(CONFIG)  # not built: `fit` builds it
    assert not distributed.built
    record = RecordInitialWeights()
    after = one_step(distributed, x, y, loss, [record])
    single = getattr(tf_models, name)(CONFIG)
    single.build()
    single.load_canonical_state_dict(record.state)
    reference = one_step(single, x, y, loss, run_eagerly=True)  # Keras' own train step, eagerly: no tracing
    for key in record.state:
        results[f"{name}/before/{key}"] = record.state[key]
        results[f"{name}/distributed/{key}"] = after[key]
        results[f"{name}/single/{key}"] = reference[key]
    if MODE == "multi-worker":  # evaluate and predict under the strategy too (their steps reduce across workers)
        results[f"{name}/evaluated"] = np.array(distributed.evaluate(x, y, batch_size=GLOBAL_BATCH, verbose=0))
        copy = getattr(tf_models, name)(CONFIG)  # the trained weights on one device, evaluated on the global batch
        copy.build()
        copy.load_canonical_state_dict(distributed.canonical_state_dict())
        copy.compile(loss=loss, run_eagerly=True)
        results[f"{name}/evaluated_on_one_device"] = np.array(copy.evaluate(x, y, batch_size=GLOBAL_BATCH, verbose=0))
        predicted = distributed.predict(x, batch_size=GLOBAL_BATCH, verbose=0)
        called = distributed(x)
        for key in ("updates", *distributed.prediction_names):
            results[f"{name}/predicted/{key}"] = predicted[key]
            results[f"{name}/called/{key}"] = called[key].numpy()
results["replicas"] = np.array(strategy.num_replicas_in_sync)
if MODE == "mirrored":  # in the same process: one TensorFlow start for the step and the `fit` checks
    results.update({f"fit/{key}": value for key, value in fit_several_epochs().items()})
temporary = OUT + ".partial.npz"
np.savez(temporary, **results)
os.replace(temporary, OUT)
