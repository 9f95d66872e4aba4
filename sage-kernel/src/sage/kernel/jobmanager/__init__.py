"""The JobManager: a long-running service that runs submitted plans on a Ray cluster.

``service`` is the server (started by ``sage cluster start --head``), ``client`` what
``RemoteEnvironment`` and ``sage job`` use, ``protocol`` what they agree on, ``records`` the
job records kept on disk.
"""
