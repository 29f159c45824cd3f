"""``python -m valeria_hub.jobs``: run the jobs service (see config.JobsServiceApp)."""

from .config import main

if __name__ == "__main__":
    main()
