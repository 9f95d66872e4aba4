"""The JobManager service: a long-running server that runs submitted plans on a Ray cluster.

``service`` is the server (started by ``sage cluster start --head``), ``records`` the job
records kept on disk. Its client and wire protocol live in :mod:`sage.kernel.client`, below
both this service and the cluster tools.
"""
