"""byoc-deploy: train, deploy, invoke, transform and tear down with SageMaker's Python SDK v2,
in local mode (--local, Docker on this machine) or in the cloud, with the same commands."""
