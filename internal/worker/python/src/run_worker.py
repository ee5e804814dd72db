#!/usr/bin/env python3
"""Starts one llem Python worker: run_worker.py BACKEND (pytorch | vllm | tensorrt).

llem-exec runs it with LLEM_EXPERIMENT (experiment.json) and LLEM_RUN_DIR set; it writes the
worker protocol's events to stdout. Running this file puts its directory on sys.path, so the
llem_worker package next to it is found without PYTHONPATH.
"""
import sys

from llem_worker.main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
