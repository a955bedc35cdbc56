"""`TFAlbertActPreprocessor`: raw strings -> model inputs in the graph, identical to transformers' AlbertTokenizer
(the referee) on the demo model's held-out text and on odd inputs; tf.data, tf.function, XLA, `.keras` files
reloaded in fresh processes (both import orders, and without `import act`), SavedModels served with strings; and the
README's "Keras from raw strings" section, executed."""

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import act
from test_readme import python_blocks, section

tf = pytest.importorskip("tensorflow")
pytest.importorskip("tensorflow_text")
keras = pytest.importorskip("keras")
transformers = pytest.importorskip("transformers")
from act.tf import TFAlbertActPreprocessor  # noqa: E402

MODEL_DIR = Path(act.__file__).resolve().parent / "demo_model"
HELDOUT = (MODEL_DIR / "heldout.txt").read_text(encoding="utf-8").splitlines()
SHORT, LONG = 24, 256  # SHORT truncates singles and pairs; LONG truncates nothing (checked below)
KEYS = ("input_ids", "attention_mask", "token_type_ids")

ODD = [
    "", " ", "   \t\n ", "And the LORD said", "Crème BRÛLÉE, naïve café", "double  spaces   and\ttabs\nnewlines",
    "``quoted'' and ''twice'' and `single' quotes", "1,000,000 and 3.14 and 1st", "☃ snowman ☃☃ and ❄",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛 😀👍🏽 👨‍👩‍👧 🇫🇷", "ΣΑΣ ΟΔΟΣ σοφός", "İstanbul ǅ ﬁ Ⅳ ①", "한국어 日本語 ひらがな が", "हिन्दी भाषा",
    "nul\x00inside", "next\x85line", "▁leading metaspace ▁▁", "the [MASK] said [CLS]x<unk>[SEP]<pad>",
    "[mask] is not special", "\u200b\u200d\ufeff zero widths", "a\u0301\u0327 combining ᳲ new ꟲ marks \u0898",
    "tab\u3000ideographic\u00a0nbsp\u2028linesep", "x" * 300,
]


@pytest.fixture(scope="module")
def reference():
    return transformers.AlbertTokenizer.from_pretrained(str(MODEL_DIR))


@pytest.fixture(scope="module")
def short():
    return TFAlbertActPreprocessor.from_pretrained(MODEL_DIR, sequence_length=SHORT)


@pytest.fixture(scope="module")
def long():
    return TFAlbertActPreprocessor.from_pretrained(MODEL_DIR, sequence_length=LONG)


def hf(tokenizer, texts, pairs=None, length=SHORT):
    return tokenizer(texts, pairs, padding="max_length", truncation=True, max_length=length, return_tensors="np",
                     return_token_type_ids=True)


def assert_same(outputs, expected, texts=None):
    for key in KEYS:
        got = outputs[key].numpy()
        assert got.dtype == np.int32, key
        bad = np.flatnonzero((got != expected[key]).any(axis=-1)) if got.ndim > 1 else []
        assert got.shape == expected[key].shape and not len(bad), \
            f"{key} differs for {[texts[i] for i in bad[:3]] if texts else bad[:3]}"


# -- ids: transformers' tokenizer is the referee ------------------------------------------------------------------

@pytest.mark.parametrize("length", [SHORT, LONG])
def test_heldout_singles_and_pairs_match_transformers(reference, short, long, length):
    pre = short if length == SHORT else long
    unlimited = [len(ids) for ids in reference(HELDOUT)["input_ids"]]
    pair_lengths = [len(ids) for ids in reference(HELDOUT[:-1], HELDOUT[1:])["input_ids"]]
    if length == SHORT:  # many singles and pairs are truncated
        assert sum(n > SHORT for n in unlimited) > 100 and sum(n > SHORT for n in pair_lengths) > 500
    else:
        assert max(pair_lengths) <= LONG and min(unlimited) < LONG
    assert_same(pre(tf.constant(HELDOUT)), hf(reference, HELDOUT, length=length), HELDOUT)
    first, second = HELDOUT[:-1], HELDOUT[1:]
    assert_same(pre((tf.constant(first), tf.constant(second))), hf(reference, first, second, length=length))


def test_pair_truncation_longest_first_every_split(reference):
    """Every (len a, len b) from 0 to 11 tokens at every sequence length from 3 to 25: tokenizers' rule for
    which segment loses tokens (the shorter keeps its length when it fits in half; the longer one gets an odd
    token)."""
    words = "and the lord said unto moses of god".split()  # one token each

    def text(count, offset):
        return " ".join(words[(i + offset) % len(words)] for i in range(count))

    first = [text(i, 0) for i in range(12) for _ in range(12)]
    second = [text(j, 3) for _ in range(12) for j in range(12)]
    assert [len(ids) for ids in reference(first, add_special_tokens=False)["input_ids"][:12 * 12:12]] == list(range(12))
    for length in range(3, 26):
        pre = TFAlbertActPreprocessor(demo_proto(), length)  # the default special tokens: the vocabulary's
        assert_same(pre((tf.constant(first), tf.constant(second))), hf(reference, first, second, length=length))
        assert_same(pre(tf.constant(first)), hf(reference, first, length=length))


def demo_proto():
    return (MODEL_DIR / "spiece.model").read_bytes()


@pytest.mark.parametrize("length", [SHORT, LONG])
def test_odd_inputs_match_transformers(reference, short, long, length):
    pre = short if length == SHORT else long
    assert_same(pre(tf.constant(ODD)), hf(reference, ODD, length=length), ODD)
    first, second = ODD, ODD[1:] + ODD[:1]
    assert_same(pre((tf.constant(first), tf.constant(second))), hf(reference, first, second, length=length))


def code_point_chunks(size=4096, skip=(), sample=False):
    """Every code point but the surrogates, in chunks of `size`; with `sample`, planes 0, 1 and 14 (tags,
    variation selectors) and one in 31 elsewhere (CJK ideographs, unassigned and private-use planes)."""
    def keep(c):
        return not sample or c < 0x20000 or 0xE0000 <= c < 0xE1000 or c % 31 == 0
    points = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000 and c not in skip and keep(c)]
    return [points[i:i + size] for i in range(0, len(points), size)]


def test_normalisation_matches_tokenizers_on_every_code_point(short):
    """The in-graph normaliser (quotes, NFKD, mark stripping, lower-casing) against tokenizers' own normalisers on
    every code point, which checks the tables of characters on which the Unicode versions differ. Each chunk is
    one string of the characters separated by newlines (a starter: nothing combines or reorders across it)."""
    from tokenizers import normalizers

    reference = normalizers.Sequence([normalizers.Replace("``", '"'), normalizers.Replace("''", '"'),
                                      normalizers.NFKD(), normalizers.StripAccents(), normalizers.Lowercase()])
    chunks = code_point_chunks(skip=(0x00, 0x0A, 0x85))  # U+0000, U+0085: see the next test; U+000A separates
    texts = ["\n".join(map(chr, chunk)) for chunk in chunks]
    got = [text.decode("utf-8").split("\n") for text in short._normalize(tf.constant(texts)).numpy()]
    bad = []
    for chunk, text, ours in zip(chunks, texts, got):
        expected = reference.normalize_str(text).split("\n")
        assert len(expected) == len(ours) == len(chunk)
        bad += [hex(c) for c, e, o in zip(chunk, expected, ours) if e != o]
    assert not bad, f"{len(bad)} code points normalise differently, e.g. {bad[:10]}"


def test_every_code_point_tokenizes_as_transformers(reference, short):
    """Each code point between two letters, end to end (normaliser, character map, white space, unknown
    characters): one text per chunk of "a?b" words. The code points of planes 0, 1 and 14, and a sample of the
    others (the previous test covers them all in the normaliser)."""
    chunks = code_point_chunks(size=1024, sample=True)
    texts = [" ".join(f"a{chr(c)}b" for c in chunk) for chunk in chunks]
    expected = reference(texts, add_special_tokens=False)["input_ids"]
    got = short._tokenize(tf.constant(texts)).to_list()
    bad = [f"{chunk[0]:04X}-{chunk[-1]:04X}" for chunk, e, g in zip(chunks, expected, got) if e != g]
    assert not bad, f"{len(bad)} chunks of code points tokenize differently: {bad[:10]}"


@pytest.mark.parametrize("flags", [{}, {"do_lower_case": False}, {"keep_accents": True}])
def test_directory_without_tokenizer_json(reference, tmp_path, flags):
    """AlbertTokenizer builds its pipeline from spiece.model + tokenizer_config.json; so does from_pretrained."""
    shutil.copy(MODEL_DIR / "spiece.model", tmp_path)
    config = json.loads((MODEL_DIR / "tokenizer_config.json").read_text())
    config.update(flags)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    expected_tokenizer = transformers.AlbertTokenizer.from_pretrained(str(tmp_path))
    pre = TFAlbertActPreprocessor.from_pretrained(tmp_path, sequence_length=SHORT)
    assert (pre.lowercase, pre.strip_accents) == (flags.get("do_lower_case", True),
                                                 not flags.get("keep_accents", False))
    texts = ODD + HELDOUT[:50]
    assert_same(pre(tf.constant(texts)), hf(expected_tokenizer, texts), texts)


# -- shapes, graph mode, tf.data, XLA, errors ---------------------------------------------------------------------

def test_scalar_and_column_inputs(reference, short):
    expected = hf(reference, ["And the LORD said"])
    scalar = short(tf.constant("And the LORD said"))
    column = short(tf.constant([["And the LORD said"]]))
    for key in KEYS:
        assert scalar[key].shape == (SHORT,) and np.array_equal(scalar[key].numpy(), expected[key][0])
        assert np.array_equal(column[key].numpy(), expected[key])
    pair = short((tf.constant("who is he ?"), tf.constant("the son")))
    assert np.array_equal(pair["input_ids"].numpy(), hf(reference, "who is he ?", "the son")["input_ids"][0])


def test_graph_mode_equals_eager(reference, short):
    texts = HELDOUT[:64]
    graph = tf.function(short, input_signature=[tf.TensorSpec([None], tf.string)])
    assert_same(graph(tf.constant(texts)), hf(reference, texts))
    pairs = tf.function(lambda a, b: short((a, b)))
    assert_same(pairs(tf.constant(texts[:-1]), tf.constant(texts[1:])), hf(reference, texts[:-1], texts[1:]))


def test_tf_data_map(reference, short):
    texts, labels = HELDOUT[:10], np.arange(10, dtype="int32")
    batched = tf.data.Dataset.from_tensor_slices((texts, labels)).batch(4).map(short)
    features = [x for x, _ in batched]
    assert [y.numpy().tolist() for _, y in batched] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    merged = {key: tf.concat([f[key] for f in features], axis=0) for key in KEYS}
    assert_same(merged, hf(reference, texts))
    unbatched = tf.data.Dataset.from_tensor_slices(texts).map(short).batch(10)  # scalars first, then batches
    assert_same(next(iter(unbatched)), hf(reference, texts))
    pairs = tf.data.Dataset.from_tensor_slices((texts[:-1], texts[1:])).map(lambda a, b: short((a, b))).batch(9)
    assert_same(next(iter(pairs)), hf(reference, texts[:-1], texts[1:]))


def test_text_in_the_label_position_is_refused(short):
    """`dataset.map(pre)` over (first, second) elements calls pre(first, second): the second texts would pass through
    as labels and `predict` would score the first texts alone. A text label (or weight) is refused instead."""
    firsts, seconds = HELDOUT[:3], HELDOUT[3:6]
    pairs = tf.data.Dataset.from_tensor_slices((firsts, seconds)).batch(3)
    with pytest.raises(ValueError, match=r"pre\(\(first, second\)\)"):
        pairs.map(short)
    with pytest.raises(ValueError, match="second argument"):
        short(tf.constant(firsts), np.array(seconds))
    with pytest.raises(ValueError, match="second argument"):
        short(firsts[0], seconds[0])
    with pytest.raises(ValueError, match="second argument"):
        short(tf.constant(firsts), np.arange(3), tf.constant(seconds))
    labelled = tf.data.Dataset.from_tensor_slices(((firsts, seconds), np.arange(3))).batch(3).map(short)
    features, labels = next(iter(labelled))
    assert labels.numpy().tolist() == [0, 1, 2]
    assert_same(features, hf(transformers.AlbertTokenizer.from_pretrained(str(MODEL_DIR)), firsts, seconds))


def test_a_tuple_of_other_than_two_text_batches_is_refused(short):
    """A pair is exactly (first_texts, second_texts); three string tensors were silently stacked into one batch."""
    texts = [tf.constant(HELDOUT[i:i + 1]) for i in range(3)]
    with pytest.raises(ValueError, match="a tuple of 3 items that are not strings"):
        short(tuple(texts))
    assert_same(short(list(HELDOUT[:3])), hf(transformers.AlbertTokenizer.from_pretrained(str(MODEL_DIR)),
                                             list(HELDOUT[:3])))  # a list of strings is a batch, as before


def test_xla_is_refused_with_a_clear_message(short):
    with pytest.raises(ValueError, match="XLA cannot compile"):
        tf.function(short, jit_compile=True)(tf.constant(["a text"]))
    text = keras.Input(shape=(), dtype="string")
    model = keras.Model(text, short(text)["input_ids"])
    with pytest.warns(UserWarning, match="jit_compile"):
        model.compile(jit_compile=True)
    assert model.jit_compile is False
    assert model.predict(tf.constant(["a text"]), verbose=0).shape == (1, SHORT)


def test_bad_inputs_raise(short):
    with pytest.raises(ValueError, match="takes strings"):
        short(tf.constant([[1, 2]]))
    with pytest.raises(ValueError, match=r"shape \(\), \(batch,\) or"):
        short(tf.constant([["a", "b"]]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size"):
        short((tf.constant(["a", "b"]), tf.constant(["c"])))
    for call in (short, tf.function(short)):
        with pytest.raises(tf.errors.InvalidArgumentError, match="valid UTF-8"):
            call(tf.constant([b"ok", b"caf\xe9"]))
    with pytest.raises(ValueError, match="sequence_length must be an int >= 3"):
        TFAlbertActPreprocessor.from_pretrained(MODEL_DIR, sequence_length=2)
    with pytest.raises(FileNotFoundError, match="no spiece.model"):
        TFAlbertActPreprocessor.from_pretrained(MODEL_DIR.parent, sequence_length=8)
    with pytest.raises(ValueError, match="not a readable SentencePiece model"):
        TFAlbertActPreprocessor(b"not a model", 8)


def test_unsupported_tokenizer_pipeline_is_refused(tmp_path):
    for name in ("spiece.model", "tokenizer_config.json"):
        shutil.copy(MODEL_DIR / name, tmp_path)
    pipeline = json.loads((MODEL_DIR / "tokenizer.json").read_text())
    pipeline["normalizer"]["normalizers"].insert(2, {"type": "NFC"})
    (tmp_path / "tokenizer.json").write_text(json.dumps(pipeline))
    with pytest.raises(NotImplementedError, match="normaliser"):
        TFAlbertActPreprocessor.from_pretrained(tmp_path, sequence_length=8)


def test_config_round_trip(short):
    config = short.get_config()
    json.dumps(config)  # plain JSON: the SentencePiece model travels as base64
    again = TFAlbertActPreprocessor.from_config(config)
    assert again.get_config() == config
    texts = tf.constant(ODD)
    for key in KEYS:
        assert np.array_equal(again(texts)[key].numpy(), short(texts)[key].numpy())


# -- the README section, .keras files and SavedModels in fresh processes -------------------------------------------

@pytest.fixture(scope="module")
def readme(tmp_path_factory):
    """Runs the README's "Keras from raw strings" blocks (train from strings, save .keras, export) in a folder."""
    folder = tmp_path_factory.mktemp("keras_text")
    here = os.getcwd()
    os.chdir(folder)
    namespace = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # from_pretrained's "newly initialised classifier" warning
            for block in python_blocks(section("keras-text")):
                exec(compile(block, "README.md", "exec"), namespace)
    finally:
        os.chdir(here)
    np.save(folder / "logits.npy", namespace["logits"])
    return namespace, folder


def test_readme_section_runs(readme, reference):
    namespace, folder = readme
    inputs, pairs = namespace["inputs"], namespace["pairs"]
    expected = hf(reference, ["And the LORD said unto Moses,", "in the beginning"], length=32)
    assert_same(inputs, expected)
    assert pairs["token_type_ids"].numpy()[0].tolist().count(1) == len(reference("the son of god .")["input_ids"]) - 1
    assert namespace["logits"].shape == (2, 2) and np.isfinite(namespace["logits"]).all()
    _, specs = namespace["served"].signatures["serving_default"].structured_input_signature
    assert [(s.dtype, s.shape.as_list()) for s in specs.values()] == [(tf.string, [None])]


def run_fresh(code, folder):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(act.__file__).resolve().parents[1]),
                                                       os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


PROBE = 'tf.constant(["and god said , let there be light", "blessed are the poor in spirit"])'


def test_keras_file_reloads_in_fresh_process_act_imported_first(readme):
    """`import act` then `import keras`: act stays cheap, and load_model finds act's classes anyway."""
    _, folder = readme
    out = run_fresh(f"""
import sys, act
assert not {{"tensorflow", "keras", "transformers"}} & set(sys.modules), "import act must stay cheap"
import keras, numpy as np, tensorflow as tf
assert "act.tf" not in sys.modules
model = keras.models.load_model("classifier_text.keras")
assert "act.tf" in sys.modules and type(model.layers[1]).__name__ == "TFAlbertActPreprocessor"
np.testing.assert_allclose(model({PROBE}).numpy(), np.load("logits.npy"), rtol=0, atol=1e-5)
print("ok")
""", folder)
    assert out.strip().endswith("ok")


def test_savedmodel_and_keras_file_in_fresh_process_keras_imported_first(readme):
    """The SavedModel serves strings with tensorflow_text alone; load_model without act says what is missing
    (Keras' message); `import keras` then `import act` loads it."""
    _, folder = readme
    out = run_fresh(f"""
import sys, numpy as np, tensorflow as tf, tensorflow_text
served = tf.saved_model.load("classifier_text_serving")
np.testing.assert_allclose(served.serve({PROBE}).numpy(), np.load("logits.npy"), rtol=0, atol=1e-5)
assert "act" not in sys.modules
import keras
try:
    keras.models.load_model("classifier_text.keras")
except TypeError as error:
    print("without act:", error)
import act
model = keras.models.load_model("classifier_text.keras")
np.testing.assert_allclose(model({PROBE}).numpy(), np.load("logits.npy"), rtol=0, atol=1e-5)
print("ok")
""", folder)
    assert "Could not locate class 'TFAlbertAct" in out and "'module': 'act.tf." in out  # Keras names the module
    assert out.strip().endswith("ok")


def test_stand_ins_cover_every_registered_class():
    """`import act` registers a stand-in for each Keras class of act.tf: the lists must agree."""
    registered = {name for name in keras.saving.get_custom_objects() if name.startswith("act>")}
    assert registered == {f"act>{name}" for name in act._TF_NAMES}
    assert not any(isinstance(keras.saving.get_custom_objects()[name], act._keras_lazy.KerasStandIn)
                   for name in registered)  # act.tf is imported here: the real classes replaced the stand-ins

