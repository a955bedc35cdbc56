"""The misalignment helper really misaligns, keeps the weights, and the model still meets the spec's tolerances."""

import numpy as np
import pytest
import torch

import cases
import oracle
from alignment import OFFSETS, misaligned, misaligned_array, misaligned_state, offsets_of


def test_misaligned_model_has_unaligned_storage_and_the_same_weights():
    config, model, state = cases.build_pt_model("mixed")
    moved = misaligned(model)
    offsets = offsets_of(moved)
    assert set(offsets) == set(OFFSETS)  # every offset is used, none is a multiple of 64
    assert all(offset % 64 for offset in offsets)
    assert len(offsets) == len(list(model.parameters()))
    for (name, before), (_, after) in zip(model.state_dict().items(), moved.state_dict().items()):
        assert torch.equal(before, after), name  # bit for bit
    assert [p.data_ptr() % 64 for p in model.parameters()] != offsets  # the original is left alone

    ids, mask, types = cases.make_inputs(seed=4)
    reference = oracle.forward(config, state, ids, mask, types)
    with torch.no_grad():
        out = moved(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                    token_type_ids=torch.from_numpy(types))
    np.testing.assert_array_equal(out.updates.numpy(), reference["updates"])
    np.testing.assert_allclose(out.last_hidden_state.numpy(), reference["last_hidden_state"], rtol=0, atol=1e-5)


def test_misaligned_keeps_tied_weights_tied_and_float64_offsets_valid():
    from act import AlbertActConfig, AlbertActForPreTraining

    torch.manual_seed(0)
    model = AlbertActForPreTraining(AlbertActConfig(**cases.tiny_config_kwargs())).double().eval()
    moved = misaligned(model)
    assert moved.predictions.decoder.weight is moved.albert.embeddings.word_embeddings.weight
    assert set(offsets_of(moved)) == {8, 56}  # the offsets a float64 item allows
    with pytest.raises(ValueError, match="not a multiple"):
        misaligned_array(np.zeros(3), 12)


def test_misaligned_numpy_arrays():
    state = {"a": np.arange(10, dtype=np.float32), "b": np.ones((3, 4), dtype=np.float32)}
    moved = misaligned_state(state)
    assert [v.ctypes.data % 64 for v in moved.values()] == [8, 12]
    for key in state:
        np.testing.assert_array_equal(moved[key], state[key])
