#!/usr/bin/env python3
"""Run the shared harness's load.py (../shared/tools/sfu-bench) with Haven's adapter added.

  shared_load.py --sfu haven http://127.0.0.1:8090 --sfu-pid PID --rooms 4 --peers 4

Same load generator code as the Janus and MediaRelay runs, so the load shape is
identical; only the signaling adapter differs. Set SFU_BENCH_DIR to override the
harness location (default: <repo>/../shared/tools/sfu-bench).
"""

import os
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SHARED = os.environ.get("SFU_BENCH_DIR") or os.path.join(os.path.dirname(REPO), "shared", "tools",
                                                          "sfu-bench")


def main() -> None:
    if not os.path.isfile(os.path.join(SHARED, "load.py")):
        sys.exit(f"shared harness not found at {SHARED}; use bench/load.py instead")
    sys.path.insert(0, SHARED)
    import sfubench.adapters  # the shared package

    assert os.path.dirname(sfubench.adapters.__file__).startswith(SHARED)
    sys.path.append(HERE)  # for haven_adapter only; sfubench is already the shared one
    from haven_adapter import HavenAdapter

    sfubench.adapters.ADAPTERS["haven"] = HavenAdapter
    sys.argv[0] = os.path.join(SHARED, "load.py")
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
