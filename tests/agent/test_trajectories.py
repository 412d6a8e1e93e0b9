"""The PPO traps of docs/design.md#ppo: each test fails if its trap comes back."""
import numpy as np
import pytest

from raydata_agent.agent.trajectories import TrajectoryBuffer, gae

G, L = 0.9, 0.8


def add(buf, ids, rewards, values, d=2):
    ids = np.asarray(ids)
    buf.add(ids, np.tile(ids[:, None], (1, d)).astype(np.float32), np.full(len(ids), 0.5),
            np.zeros(len(ids)), np.zeros((len(ids), 2)), np.asarray(values, float), np.asarray(rewards, float))


def test_gae_matches_hand_computation():
    r = np.array([[1.0, 2.0, 3.0]])
    v = np.array([[0.5, 0.4, 0.3]])
    adv, tgt = gae(r, v, np.array([0.2]), np.array([False]), np.array([3]), G, L)
    d2 = 3 + G * 0.2 - 0.3
    d1 = 2 + G * 0.3 - 0.4
    d0 = 1 + G * 0.4 - 0.5
    expected = [d0 + G * L * (d1 + G * L * d2), d1 + G * L * d2, d2]
    np.testing.assert_allclose(adv[0], expected)
    np.testing.assert_allclose(tgt[0], np.array(expected) + v[0])
    adv_t, _ = gae(r, v, np.array([0.2]), np.array([True]), np.array([3]), G, L)
    assert adv_t[0, 2] == pytest.approx(3 - 0.3)  # terminal: no bootstrap


def test_next_state_is_the_same_sample_not_the_next_row():
    """Trap 2: sample 7's advantage must not see sample 8's value, even though 8 arrives next."""
    buf = TrajectoryBuffer()
    add(buf, [7, 8], rewards=[1.0, 5.0], values=[0.0, 100.0])  # epoch 0
    add(buf, [8, 7], rewards=[5.0, 1.0], values=[100.0, 0.25])  # epoch 1, order shuffled
    batch = buf.take(G, L, final=False)
    assert sorted(batch.ids.tolist()) == [7, 8]  # the epoch-0 steps, now with known successors
    adv = dict(zip(batch.ids.tolist(), batch.advantages.tolist()))
    assert adv[7] == pytest.approx(1.0 + G * 0.25 - 0.0)  # bootstrapped with 7's own next value
    assert adv[8] == pytest.approx(5.0 + G * 100.0 - 100.0)
    assert len(buf) == 2  # the epoch-1 steps stay open until their successors arrive


def test_changing_one_sample_leaves_others_advantages_alone():
    def advantages(reward_of_3):
        buf = TrajectoryBuffer()
        for epoch in range(3):
            add(buf, [1, 2, 3], rewards=[0.1, 0.2, reward_of_3], values=[0.3, 0.3, 0.3])
        b = buf.take(G, L, final=True)
        return {i: b.advantages[b.ids == i] for i in (1, 2, 3)}

    a, b = advantages(0.0), advantages(10.0)
    np.testing.assert_allclose(a[1], b[1])
    np.testing.assert_allclose(a[2], b[2])
    assert not np.allclose(a[3], b[3])


def test_advantages_are_per_sample():
    """Trap 1: every transition has its own advantage, not one shared value."""
    buf = TrajectoryBuffer()
    add(buf, [0, 1, 2, 3], rewards=[0.0, 1.0, 2.0, 3.0], values=[0.0] * 4)
    batch = buf.take(G, L, final=True)
    assert batch.advantages.shape == (4,)
    assert len(np.unique(batch.advantages)) == 4


def test_trajectory_ends_at_last_epoch_and_buffer_empties():
    buf = TrajectoryBuffer()
    add(buf, [4], rewards=[1.0], values=[0.6])
    assert buf.take(G, L, final=False) is None  # no successor yet
    batch = buf.take(G, L, final=True)
    assert batch.advantages[0] == pytest.approx(1.0 - 0.6)
    assert len(buf) == 0


def test_gae_spans_several_steps_of_one_sample():
    buf = TrajectoryBuffer()
    for epoch in range(3):
        add(buf, [5], rewards=[1.0], values=[0.0])
    batch = buf.take(G, L, final=True)
    np.testing.assert_allclose(batch.advantages, [1 + G * L * (1 + G * L), 1 + G * L, 1.0], rtol=1e-6)


def test_state_round_trip():
    buf = TrajectoryBuffer()
    add(buf, [1, 2], rewards=[1.0, 2.0], values=[0.0, 0.0])
    other = TrajectoryBuffer()
    other.load_state_dict(buf.state_dict())
    assert len(other) == 2
    np.testing.assert_allclose(other.take(G, L, True).advantages, buf.take(G, L, True).advantages)
