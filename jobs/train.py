"""Train one model with a data selector, as a Ray job:

    ray job submit --working-dir . -- python jobs/train.py --config jobs/configs/shapes_infobatch.yaml

It joins the cluster named by RAY_ADDRESS (set by `ray job submit`); arguments are those of
`raydata-agent run`.
"""
import sys

from raydata_agent.cli import main  # the CLI itself: its one-line errors, exit codes and summary

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
