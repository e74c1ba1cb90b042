import math

import pytest
import torch
from sklearn.metrics import roc_auc_score

from segloss.metrics import acceptance_threshold, auroc, dar, mls, msp


def sklearn_auroc(known, unknown):
    labels = [1] * len(known) + [0] * len(unknown)
    return roc_auc_score(labels, torch.cat([known, unknown]).numpy())


def test_msp_and_mls_hand_values():
    logits = torch.tensor([[0.0, math.log(3.0)], [2.0, -1.0]])
    torch.testing.assert_close(msp(logits), torch.tensor([0.75, math.exp(2) / (math.exp(2) + math.exp(-1))]))
    torch.testing.assert_close(mls(logits), torch.tensor([math.log(3.0), 2.0]))
    # the class dimension can be elsewhere, e.g. per-pixel scores of (N, C, H, W) logits
    dense = torch.randn(2, 5, 3, 4)
    torch.testing.assert_close(mls(dense), dense.amax(1))
    torch.testing.assert_close(msp(dense.half()), dense.half().float().softmax(1).amax(1))


def test_auroc_hand_values():
    assert auroc(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 2.0])) == 1.0
    assert auroc(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])) == 0.0
    # pairs (known, unknown): (2,1) win, (2,3) loss, (2,2) tie, ... -> (1 + 0 + 0.5 + 1 + 1 + 1) / 6
    assert auroc(torch.tensor([2.0, 5.0]), torch.tensor([1.0, 3.0, 2.0])) == pytest.approx(4.5 / 6)
    assert auroc(torch.ones(3), torch.ones(4)) == 0.5


@pytest.mark.parametrize("seed", range(5))
def test_auroc_equals_sklearn_with_ties(seed):
    generator = torch.Generator().manual_seed(seed)
    known = torch.randint(0, 20, (300,), generator=generator).double() / 4  # many ties
    unknown = torch.randint(0, 15, (200,), generator=generator).double() / 4
    assert auroc(known, unknown) == pytest.approx(sklearn_auroc(known, unknown), abs=1e-12)


def test_auroc_equals_sklearn_on_large_max_logits():
    # max logits far beyond a sigmoid's float32 range stay distinct
    known = torch.randn(500, dtype=torch.float64) * 5 + 60
    unknown = torch.randn(400, dtype=torch.float64) * 5 + 55
    assert auroc(known.float(), unknown.float()) == pytest.approx(
        sklearn_auroc(known.float().double(), unknown.float().double()), abs=1e-12
    )


def test_acceptance_threshold_accepts_95_percent():
    scores = torch.randperm(100).double()  # 0..99 shuffled
    threshold = acceptance_threshold(scores, 0.95)
    assert threshold == 5.0
    assert int((scores >= threshold).sum()) == 95
    assert acceptance_threshold(torch.arange(1.0, 21.0)) == 2.0  # 20 scores: reject 1, accept 19
    assert acceptance_threshold(torch.arange(1.0, 11.0)) == 1.0  # 10 scores: floor(0.5) = 0 rejected
    assert acceptance_threshold(torch.arange(1.0, 11.0), accept_rate=0.8) == 3.0


def test_dar_hand_example():
    # clean: scores 1..20 correct, plus two wrong ones with high scores that must not move the threshold
    clean_scores = torch.cat([torch.arange(1.0, 21.0), torch.tensor([30.0, 0.5])])
    clean_correct = torch.tensor([True] * 20 + [False, False])
    # threshold = 2 (the 2nd lowest correct score, so 19 of 20 are accepted)
    adv_scores = torch.tensor([3.0, 1.5, 5.0, 1.0, 2.0])
    adv_correct = torch.tensor([True, True, False, False, False])
    # accepted & correct: ok, rejected & correct: bad, accepted & wrong: bad, rejected & wrong: ok,
    # at the threshold & wrong: accepted, so bad
    assert dar(clean_scores, clean_correct, adv_scores, adv_correct) == pytest.approx(2 / 5)
    # all adversarial samples wrong and all rejected -> 1
    assert dar(clean_scores, clean_correct, torch.tensor([0.1, 1.9]), torch.tensor([False, False])) == 1.0


def test_metric_errors():
    with pytest.raises(ValueError, match="known_scores is empty"):
        auroc(torch.tensor([]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="unknown_scores must be 1-D"):
        auroc(torch.tensor([1.0]), torch.ones(2, 2))
    with pytest.raises(ValueError, match="NaN"):
        auroc(torch.tensor([float("nan")]), torch.tensor([1.0]))
    with pytest.raises(
        ValueError, match=r"clean_correct shape \(2,\) does not match clean_scores shape \(3,\)"
    ):
        dar(torch.ones(3), torch.ones(2, dtype=torch.bool), torch.ones(1), torch.ones(1, dtype=torch.bool))
    with pytest.raises(TypeError, match="adv_correct must be a bool tensor"):
        dar(torch.ones(3), torch.ones(3, dtype=torch.bool), torch.ones(1), torch.ones(1))
    with pytest.raises(ValueError, match="at least one correctly classified clean sample"):
        dar(torch.ones(3), torch.zeros(3, dtype=torch.bool), torch.ones(1), torch.ones(1, dtype=torch.bool))
    with pytest.raises(ValueError, match="adv_scores is empty"):
        dar(torch.ones(3), torch.ones(3, dtype=torch.bool), torch.ones(0), torch.ones(0, dtype=torch.bool))
    with pytest.raises(ValueError, match="accept_rate"):
        acceptance_threshold(torch.ones(3), 1.5)
    with pytest.raises(TypeError, match="floating-point"):
        msp(torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="logits is empty"):
        mls(torch.ones(0, 3))
