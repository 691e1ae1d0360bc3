"""`python -m resnet_bench`: the same command as `resnet-bench`."""

from resnet_bench.cli import main

raise SystemExit(main())
