"""The hand-written kernels against finite differences, and the microbatch bookkeeping."""

import numpy as np
import pytest

from pipenaut.model import ModelConfig, build_stages, layer_split, make_dataset, split_microbatches

CONFIG = ModelConfig(dim=5, layers=3, batch_size=7, classes=4, seed=3, dtype="float64")


def pipeline_loss(stages, inputs, labels, pieces):
    """The weighted sum of microbatch losses, computed by running the stages forward only."""
    total = 0.0
    for mb, piece in enumerate(pieces):
        x = inputs[piece]
        for stage in stages:
            x = stage.forward(mb, x, labels[piece], (piece.stop - piece.start) / len(labels))
        total += (piece.stop - piece.start) / len(labels) * stages[-1].losses.pop(mb)
        for stage in stages:
            stage.stash.clear()
    return total


def accumulate_gradients(stages, inputs, labels, pieces, split_backward):
    """Forward and backward every microbatch through every stage, as a pipeline would."""
    for mb, piece in enumerate(pieces):
        x = inputs[piece]
        for stage in stages:
            x = stage.forward(mb, x, labels[piece], (piece.stop - piece.start) / len(labels))
        grad = None
        for stage in reversed(stages):
            grad = stage.backward_input(mb, grad, need_input_grad=stage.index > 0)
            if not split_backward:
                stage.backward_weight(mb)
        if split_backward:  # all W after all I, as zero-bubble schedules do
            for stage in stages:
                stage.backward_weight(mb)


@pytest.mark.parametrize("microbatches", [1, 3])
@pytest.mark.parametrize("split_backward", [False, True])
def test_weight_gradients_match_finite_differences(microbatches, split_backward):
    stages = build_stages(CONFIG, 2)
    inputs, labels = make_dataset(CONFIG)
    pieces = split_microbatches(CONFIG.batch_size, microbatches)
    accumulate_gradients(stages, inputs, labels, pieces, split_backward)
    rng = np.random.default_rng(0)
    checked = 0
    for stage in stages:
        for param, grad in stage.params():
            for index in map(tuple, rng.integers(0, param.shape, size=(3, param.ndim))):
                original = param[index]
                param[index] = original + 1e-6
                up = pipeline_loss(stages, inputs, labels, pieces)
                param[index] = original - 1e-6
                down = pipeline_loss(stages, inputs, labels, pieces)
                param[index] = original
                assert grad[index] == pytest.approx((up - down) / 2e-6, rel=1e-5, abs=1e-8)
                checked += 1
    assert checked == 3 * sum(len(s.params()) for s in stages)


def test_input_gradient_matches_finite_differences():
    first, last = build_stages(CONFIG, 2)
    inputs, labels = make_dataset(CONFIG)
    x = first.forward(0, inputs, labels)  # the activation the second stage receives
    last.forward(0, x, labels, 1.0)
    grad_x = last.backward_input(0, None)
    for index in [(0, 0), (3, 2), (6, 4)]:
        shifted = x.copy()
        shifted[index] += 1e-6
        last.forward(1, shifted, labels, 1.0)
        shifted[index] -= 2e-6
        last.forward(2, shifted, labels, 1.0)
        numeric = (last.losses[1] - last.losses[2]) / 2e-6
        assert grad_x[index] == pytest.approx(numeric, rel=1e-5, abs=1e-8)


def test_microbatch_gradients_add_up_to_the_full_batch_gradient():
    whole, pieces = build_stages(CONFIG, 2), build_stages(CONFIG, 2)
    inputs, labels = make_dataset(CONFIG)
    accumulate_gradients(whole, inputs, labels, split_microbatches(7, 1), False)
    accumulate_gradients(pieces, inputs, labels, split_microbatches(7, 3), False)  # sizes 3, 2, 2
    for a, b in zip(whole, pieces):
        for (_, g1), (_, g2) in zip(a.params(), b.params()):
            np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-14)


def test_weight_gradient_before_input_gradient_is_an_error():
    (stage,) = build_stages(CONFIG, 1)
    inputs, labels = make_dataset(CONFIG)
    stage.forward(0, inputs, labels)
    with pytest.raises(RuntimeError, match="before its input gradient"):
        stage.backward_weight(0)


def test_stash_is_held_from_forward_until_weight_gradient():
    (stage,) = build_stages(CONFIG, 1)
    inputs, labels = make_dataset(CONFIG)
    stage.forward(0, inputs, labels)
    stage.forward(1, inputs, labels)
    assert len(stage.stash) == 2
    stage.backward_input(0, None)
    assert len(stage.stash) == 2
    stage.backward_weight(0)
    assert len(stage.stash) == 1


@pytest.mark.parametrize("layers,stages,expected", [(8, 4, [2, 2, 2, 2]), (10, 4, [3, 3, 2, 2]), (5, 5, [1] * 5), (7, 1, [7])])
def test_layer_split_spreads_the_remainder_over_the_first_stages(layers, stages, expected):
    assert layer_split(layers, stages) == expected


def test_the_same_seed_gives_the_same_weights_however_the_model_is_cut():
    config = ModelConfig(dim=4, layers=6, dtype="float64")
    one = [p for s in build_stages(config, 1) for p, _ in s.params()]
    four = [p for s in build_stages(config, 4) for p, _ in s.params()]
    assert len(one) == len(four)
    for a, b in zip(one, four):
        np.testing.assert_array_equal(a, b)


def test_last_stage_holds_the_head():
    stages = build_stages(ModelConfig(dim=4, layers=5, classes=3), 2)
    assert [s.is_last for s in stages] == [False, True]
    assert stages[-1].layers[-1].weight.shape == (4, 3)


@pytest.mark.parametrize("batch,microbatches", [(8, 8), (10, 4), (7, 3), (100, 7)])
def test_microbatch_sizes_differ_by_at_most_one_and_cover_the_batch(batch, microbatches):
    pieces = split_microbatches(batch, microbatches)
    sizes = [p.stop - p.start for p in pieces]
    assert len(pieces) == microbatches and sum(sizes) == batch
    assert max(sizes) - min(sizes) <= 1
    assert all(a.stop == b.start for a, b in zip(pieces, pieces[1:]))


def test_more_microbatches_than_samples_is_refused():
    with pytest.raises(ValueError):
        split_microbatches(3, 4)
