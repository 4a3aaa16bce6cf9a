"""Learning-rate schedule."""
import pytest
import torch
from torch.optim.lr_scheduler import LambdaLR

from fastface.train.schedule import WarmupDecay


def test_warmup_then_poly_decay():
    f = WarmupDecay(total_steps=12, warmup_steps=4, kind="poly", power=2.0)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(8) == pytest.approx((1 - 4 / 8) ** 2)
    assert f(12) == 0.0


def test_cosine_decay_without_warmup():
    f = WarmupDecay(total_steps=10, kind="cosine")
    assert f(0) == 1.0 and f(5) == pytest.approx(0.5) and f(10) == pytest.approx(0.0)


def test_schedule_survives_a_scheduler_state_dict_round_trip():
    def scheduler():
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        return opt, LambdaLR(opt, WarmupDecay(10, 2, "cosine"))

    opt, sched = scheduler()
    for _ in range(5):
        opt.step()
        sched.step()
    opt2, sched2 = scheduler()
    sched2.lr_lambdas[0].kind = "poly"  # a different schedule, overwritten by the state
    sched2.load_state_dict(sched.state_dict())
    assert sched2.lr_lambdas[0].kind == "cosine"
    opt.step(), sched.step(), opt2.step(), sched2.step()
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_bad_schedules():
    with pytest.raises(ValueError, match="unknown schedule"):
        WarmupDecay(10, kind="step")
    with pytest.raises(ValueError, match="warmup_steps"):
        WarmupDecay(10, warmup_steps=10)
