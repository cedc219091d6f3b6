from decile.config import load_settings
from decile.service import run
from decile_execution.app import create_app
from decile_execution.settings import ExecutionSettings

run(lambda: create_app(load_settings(ExecutionSettings)))
