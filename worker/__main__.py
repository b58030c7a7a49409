"""`python -m worker`: a worker service."""

import sys

from common.service_main import service_main
from worker.service import run_worker
from worker.settings import WorkerSettings

if __name__ == "__main__":
    sys.exit(service_main("worker", WorkerSettings, run_worker))
