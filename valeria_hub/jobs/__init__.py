"""The batch jobs service: a hub-managed FastAPI service that runs Kubernetes Jobs
with the same uid, storage and S3 keys as the user's notebook (see app.py)."""
