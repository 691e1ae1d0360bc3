"""`python -m resnet_bench`: the same command as `resnet-bench`."""

from resnet_bench.cli import main

if __name__ == "__main__":  # not when a worker process of this package starts
    raise SystemExit(main())
