"""Starting, joining and stopping a SAGE cluster: a Ray head or worker plus the JobManager."""
