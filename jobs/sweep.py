"""Run a sweep as a Ray job:

    ray job submit --working-dir . -- python jobs/sweep.py --config jobs/configs/sweep_shapes.yaml

Arguments are those of `raydata-agent tune`; the cluster comes from RAY_ADDRESS.
"""
import sys

from raydata_agent.cli import main  # the CLI itself: its one-line errors, exit codes and summary

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
