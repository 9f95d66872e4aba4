"""``python -m sage.kernel.cluster.launch_ray start ...``: ``ray start`` for a loopback cluster.

Ray replaces 127.0.0.1 in ``--address`` and ``--node-ip-address`` with the machine's
outward address unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, and with that variable it
refuses to start a worker node. A worker joining a head that listens on the loopback (two
nodes on one machine) therefore runs ``ray start`` with that rewrite turned off.
"""

from __future__ import annotations

import sys


def main() -> None:
    from ray._private import services
    from ray.scripts.scripts import main as ray_main

    services.resolve_ip_for_localhost = lambda host: host
    sys.argv = ["ray", *sys.argv[1:]]
    ray_main()


if __name__ == "__main__":
    main()
