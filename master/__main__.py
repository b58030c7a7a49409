"""`python -m master`: the master service."""

import sys

from common.service_main import service_main
from master.server import run_master
from master.settings import MasterSettings

if __name__ == "__main__":
    sys.exit(service_main("master", MasterSettings, run_master))
