"""The selection session in process (no Ray): what any training loop talks to."""
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

import raydata_agent
from raydata_agent.sampling import shard  # how ranks split an epoch: internal, not part of the public API
from plot_pixels import assert_plot_has_data

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def start(tmp_path, n=100, **kw):
    kw = {"epochs": 3, "selector": "random_dynamic", "ratio": 0.3, **kw}
    return raydata_agent.start_session(n, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                                       storage_path=str(tmp_path / "runs"), progress=False, **kw)


def test_shard_gives_ranks_equal_disjoint_shares():
    ids, w = np.arange(10), np.ones(10, np.float32)
    parts = [shard(ids, w, r, 3, seed=1)[0] for r in range(3)]
    assert [len(p) for p in parts] == [4, 4, 4]  # padded to equal length
    assert set(np.concatenate(parts)) == set(range(10))


def test_sampler_record_and_weights_drive_the_selector(tmp_path):
    session = start(tmp_path, config={"selection.loss_weighting": "inverse_ratio", "selection.warmup_epochs": 0})
    sampler = session.sampler()
    assert isinstance(sampler, raydata_agent.SelectedSampler) and isinstance(sampler, torch.utils.data.Sampler)
    seen = []
    for epoch in range(3):
        ids = list(sampler)
        assert len(ids) == len(sampler) == 30 and len(set(ids)) == 30
        seen.append(set(ids))
        batch = torch.tensor(ids[:10])
        assert torch.allclose(session.loss_weights(batch), torch.full((10,), 1 / 0.3))
        loss = torch.rand(10, requires_grad=True)
        out = session.record(batch, loss, logits=torch.randn(10, 4))
        assert out.item() == pytest.approx((loss * (1 / 0.3)).mean().item())
        # The console's and MLflow's train_loss is the plain mean (a weighted one jumps by 1/ratio when selection starts).
        assert session.train_loss == pytest.approx(loss.mean().item())
        assert session.train_loss_weighted == pytest.approx(out.item())
        out.backward()
        with pytest.raises(KeyError, match="not in epoch"):
            session.loss_weights([i for i in range(100) if i not in ids][:2])
    session.close()
    history = session.history
    assert [h["selected"] for h in history] == [30, 30, 30]
    assert [h["passes"] for h in history] == [10, 10, 10]  # what record() got reached the pool
    assert seen[0] != seen[1]  # random_dynamic draws a fresh subset each epoch
    assert history[1]["train_loss_weighted"] == pytest.approx(history[1]["train_loss"] / 0.3)
    run = MlflowClient(session.tracking_uri).get_run(session.run_id)
    assert run.info.status == "FINISHED" and run.data.params["selection.selector"] == "random_dynamic"
    assert run.data.metrics["selected_fraction"] == pytest.approx(0.3)


def test_record_rejects_bad_input(tmp_path):
    session = start(tmp_path)
    with pytest.raises(RuntimeError, match="no epoch is planned"):
        session.record([0], torch.ones(1))
    session.plan_epoch(0)
    ids = session.ids[:2]
    with pytest.raises(ValueError, match="reduction='none'"):
        session.record(ids, torch.ones(3))
    with pytest.raises(raydata_agent.NonFiniteLossError, match=f"sample ids \\[{ids[1]}\\]"):
        session.record(ids, torch.tensor([1.0, float("nan")]))
    with pytest.raises(TypeError, match="use_ray=True"):
        import pickle

        pickle.dumps(session)
    session.close("FAILED")


def test_an_epoch_without_record_warns_and_a_run_without_any_fails(tmp_path):
    """Forgetting `session.record` trains on all the data with no selection: it must not pass silently."""
    session = start(tmp_path, epochs=2)
    with pytest.warns(UserWarning, match=r"epoch 1 recorded no sample: call session.record\(ids"):
        list(session.sampler())
        session.end_epoch()
    list(session.sampler())
    with pytest.warns(UserWarning, match="epoch 2 recorded no sample"), \
            pytest.raises(RuntimeError, match=r"no sample was recorded in 2 epochs .*call session.record"):
        session.close()
    assert MlflowClient(session.tracking_uri).get_run(session.run_id).info.status == "FAILED"


def test_plain_pytorch_example_trains_on_the_selected_share(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["plain_pytorch.py", "--epochs", "4", "--samples", "400",
                                      "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                                      "--storage-path", str(tmp_path / "runs")])
    session = runpy.run_path(str(EXAMPLES / "plain_pytorch.py"), run_name="not_main")["main"]()
    kept = [h["selected"] for h in session.history]
    print("plain_pytorch kept per epoch:", kept)
    assert kept[0] == 400 and kept[3] == 400  # warm-up and annealing (delta 0.75) are full
    assert all(150 <= k < 400 for k in kept[1:3])  # infobatch prunes about half of the below-mean losses
    assert all(h["passes"] == h["selected"] for h in session.history)  # trained on exactly the selected
    assert all(0.0 <= h["val_metric"] <= 1.0 for h in session.history)  # end_epoch(val_metric=accuracy)
    assert_plot_has_data(session.tracking_uri, session.run_id, tmp_path)  # metric_vs_cost.png is not blank
    out = capsys.readouterr().out
    assert "epoch 2/4  kept" in out and f"MLflow run {session.run_id}" in out


def test_own_loop_and_recipe_runs_get_their_params_tags_and_titles_from_one_factory(tmp_path):
    """start_session and runner.run both open their MLflow run through session_factory: an own loop's run
    lists only the keys a session reads (no task or data set of ours), the recipe's also its task's."""
    from raydata_agent.plots import plot_title
    from raydata_agent.session_factory import RECIPE, run_params, run_tags

    session = start(tmp_path, integration="plain_pytorch")
    session.close("FAILED")
    run = MlflowClient(session.tracking_uri).get_run(session.run_id)
    assert run.data.tags["integration"] == "plain_pytorch" and "task" not in run.data.tags
    assert "task.name" not in run.data.params and "data.name" not in run.data.params
    assert run.data.params["train.epochs"] == "3" and "selection.ratio" in run.data.params
    assert session.plot_title == f"run {session.run_id[:8]}: random_dynamic, ratio 0.3, plain_pytorch"
    cfg = raydata_agent.load_config(None, ["selection.selector=greedy"])
    assert {"task.name", "data.name", "train.lr"} <= set(run_params(cfg, RECIPE))
    assert run_tags(cfg, RECIPE, source={})["data"] == "shapes"
    assert plot_title(cfg, "0123456789", RECIPE) == "run 01234567: greedy, ratio 0.5, shapes, small_cnn"
