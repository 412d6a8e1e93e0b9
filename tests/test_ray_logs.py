"""Ray's known error-level line and warning traceback of a healthy run stay off the driver's console;
every other line prints."""
from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher

from raydata_agent.ray_logs import hide_known_ray_lines

# As the driver receives it (Ray 2.60.0, every run): from the Train controller's process.
PREEMPTION_LINE = ("[2026-12-03 18:22:14,231 E 6481 6567] core_worker.cc:2465: Actor with class name: "
                   "'PreemptionWatcher' and ID: 'ae945f09c4e3c10287978a6a01000000' has constructor arguments in "
                   "the object store and max_restarts > 0. If the arguments in the object store go out of scope "
                   "or are lost, the actor restart will fail. See https://github.com/ray-project/ray/issues/53727 "
                   "for more details.")

# The controller's first resource request timing out while Ray Data's AutoscalingCoordinator starts.
RESOURCE_REQUEST_TRACEBACK = [
    "Failed to send resource request for train-1745956f0694424eb5596cee6afc2c43. If this only happens "
    "transiently during network partition or CPU being overloaded, it's safe to ignore this error. If this "
    "error persists, file a GitHub issue.",
    "Traceback (most recent call last):",
    '  File "/site-packages/ray/train/v2/_internal/execution/scaling_policy/autoscaling_coordinator_client.py", '
    "line 58, in send_resource_request",
    "    ray.get(",
    '  File "python/ray/includes/common.pxi", line 107, in ray._raylet.check_status',
    "ray.exceptions.GetTimeoutError: Get timed out: some object(s) not ready.",
]


def test_known_ray_lines_are_dropped_and_other_lines_print():
    printed = []
    saved = list(dispatcher.handlers)
    try:  # the printer ray.init registers, stood in for by one that records what it is given
        dispatcher.handlers = [("ray_print_logs", lambda batch: printed.append(batch["lines"]))]
        hide_known_ray_lines()
        hide_known_ray_lines()  # after every init_ray: wrapping twice must not matter
        dispatcher.emit({"pid": 1, "lines": [PREEMPTION_LINE, "epoch 1 done"], "is_err": True})
        dispatcher.emit({"pid": 1, "lines": [PREEMPTION_LINE], "is_err": True})
        dispatcher.emit({"pid": 1, "lines": ["before", *RESOURCE_REQUEST_TRACEBACK, "after"], "is_err": True})
        other_error = [*RESOURCE_REQUEST_TRACEBACK[:-1], "ray.exceptions.RayActorError: the actor died"]
        dispatcher.emit({"pid": 1, "lines": other_error, "is_err": True})  # not the known one: printed
        dispatcher.emit({"pid": 1, "lines": ["Actor with class name: 'ScoreStore' has constructor arguments in "
                                             "the object store"], "is_err": True})
    finally:
        dispatcher.handlers = saved
    assert printed == [["epoch 1 done"], ["before", "after"], other_error,
                       ["Actor with class name: 'ScoreStore' has constructor arguments in the object store"]]
