"""Ray's token authentication, which keeps strangers from running code on a SAGE cluster.

Ray has it from 2.52 on; an older Ray ignores ``RAY_AUTH_MODE=token`` and would run the
cluster open to anyone who reaches its ports. ``sage cluster start`` therefore refuses a Ray
outside :data:`SUPPORTED_RAY`, and after a head starts it checks that the head's GCS refuses
a client that sends no token and answers one that sends the cluster token.
"""

from __future__ import annotations

import importlib.metadata

from sage.kernel.cluster.errors import ClusterError

MINIMUM_RAY = "2.52"
SUPPORTED_RAY = f">={MINIMUM_RAY},<3"
CHECK_TIMEOUT_S = 10.0
_INSTALL = f"pip install 'ray[client,default]{SUPPORTED_RAY}'"


def check_ray_version(version: str | None = None) -> str:
    """Raise ``ClusterError`` unless ``version`` (default: the installed Ray) is supported."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    if version is None:
        try:
            version = importlib.metadata.version("ray")
        except importlib.metadata.PackageNotFoundError:
            raise ClusterError(f"Ray is not installed; a SAGE cluster runs on it: {_INSTALL}") from None
    try:
        parsed = Version(version)
    except InvalidVersion:
        raise ClusterError(f"the installed Ray reports version {version!r}, which is not a version "
                           f"number; reinstall it: {_INSTALL}") from None
    if SpecifierSet(SUPPORTED_RAY).contains(parsed, prereleases=True):
        return version
    if parsed < Version(MINIMUM_RAY):
        why = ("the cluster's safety rests on Ray's token authentication, which older versions lack "
               "(they would run the cluster open to anyone who reaches its ports)")
    else:
        why = "this SAGE has not been tried with that major version of Ray"
    raise ClusterError(f"Ray {version} is installed, but a SAGE cluster needs Ray {SUPPORTED_RAY}: {why}; "
                       f"{_INSTALL}")


def check_head_refuses_strangers(gcs_address: str, token: str) -> None:
    """Raise ``ClusterError`` unless the GCS at ``gcs_address`` refuses a call without a token
    and answers the same call with ``token``."""
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    with grpc.insecure_channel(gcs_address) as channel:
        stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)

        def ask(metadata: tuple[tuple[str, str], ...]) -> None:
            stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), timeout=CHECK_TIMEOUT_S,
                              metadata=metadata)

        try:
            ask(())
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAUTHENTICATED:
                raise ClusterError(f"cannot check the authentication of the Ray head at {gcs_address}: "
                                   f"{exc.code().name}: {exc.details()}") from None
        else:
            raise ClusterError(
                f"the Ray head at {gcs_address} answered a client that sent no token: Ray's token "
                "authentication is not in force, so anyone who reaches its port could run code on "
                "the cluster; check that nothing sets RAY_AUTH_MODE=disabled for `ray start`")
        try:
            ask((("authorization", f"Bearer {token}"),))
        except grpc.RpcError as exc:
            raise ClusterError(f"the Ray head at {gcs_address} refuses the cluster token "
                               f"({exc.code().name}: {exc.details()})") from None
